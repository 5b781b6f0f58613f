package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"smartgate/internal/fhir/devdata"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// DevUser is one entry of <data-dir>/dev-users.json, the demo users of
// `serve --dev` (DESIGN.md "Dev mode").
type DevUser struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
	FHIRUser string `json:"fhirUser"`
}

// DevUsersFile is the file name of the demo users in the data dir.
const DevUsersFile = "dev-users.json"

// devUserName makes a username from a demo record id: "pra-ines-munoz"
// becomes "ines.munoz".
func devUserName(id string) string {
	_, rest, ok := strings.Cut(id, "-")
	if !ok {
		rest = id
	}
	return strings.ReplaceAll(rest, "-", ".")
}

// devPassword returns a random password of 16 letters and digits in
// groups of four (about 82 bits), easy to read off a terminal.
func (s *Service) devPassword() (string, error) {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789" // 32 symbols, no look-alikes
	var b [16]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", err
	}
	var sb strings.Builder
	for i, c := range b {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String(), nil
}

// EnsureDevUsers makes the dev demo users exist: one admin, one
// practitioner linked to the first demo Practitioner, one patient linked
// to the first demo Patient. On the first start it creates them with
// random passwords and writes path (mode 0600); created is then true and
// the caller shows the passwords once. Later starts reuse path: users
// missing from the database (a new database) are made again from it, and
// nothing is printed. When path is missing but the users exist (someone
// deleted the file), they get new passwords and a new file.
func (s *Service) EnsureDevUsers(ctx context.Context, path string) (users []DevUser, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &users); err != nil {
			return nil, false, fmt.Errorf("%s is not the demo users' JSON (%v); delete it and restart to make new demo users", path, err)
		}
		_ = os.Chmod(path, 0o600)
		for _, du := range users {
			if _, err := s.st.GetUserByUsername(ctx, du.Username); errors.Is(err, store.ErrNotFound) {
				if _, err := s.CreateUser(ctx, NewUser{Username: du.Username, Role: du.Role, FHIRUser: du.FHIRUser, Password: du.Password, WeakPasswordOK: true}, "system"); err != nil &&
					!errors.Is(err, store.ErrConflict) && !problem.IsID(err, problem.UserExists) {
					return nil, false, fmt.Errorf("demo user %s from %s: %w", du.Username, path, err)
				}
			} else if err != nil {
				return nil, false, err
			}
		}
		return users, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, err
	}
	pra, pat := devdata.Practitioners()[0], devdata.Patients()[0]
	users = []DevUser{
		{Username: "admin", Role: store.RoleAdmin},
		{Username: devUserName(pra), Role: store.RolePractitioner, FHIRUser: "Practitioner/" + pra},
		{Username: devUserName(pat), Role: store.RolePatient, FHIRUser: "Patient/" + pat},
	}
	for i := range users {
		du := &users[i]
		if du.Password, err = s.devPassword(); err != nil {
			return nil, false, err
		}
		u, err := s.st.GetUserByUsername(ctx, du.Username)
		if errors.Is(err, store.ErrNotFound) {
			_, err = s.CreateUser(ctx, NewUser{Username: du.Username, Role: du.Role, FHIRUser: du.FHIRUser, Password: du.Password, WeakPasswordOK: true}, "system")
			if err == nil {
				continue
			}
			if !errors.Is(err, store.ErrConflict) && !problem.IsID(err, problem.UserExists) {
				return nil, false, fmt.Errorf("demo user %s: %w", du.Username, err)
			}
			// Another node on the same database created it at the same
			// moment: give it this node's password, as for an existing user.
			u, err = s.st.GetUserByUsername(ctx, du.Username)
		}
		switch {
		case err != nil:
			return nil, false, err
		default:
			if err := s.SetPassword(ctx, u, du.Password, "system"); err != nil {
				return nil, false, fmt.Errorf("demo user %s: %w", du.Username, err)
			}
		}
	}
	if err := writePrivateJSON(path, users); err != nil {
		return nil, false, fmt.Errorf("writing the demo users to %s: %w", path, err)
	}
	return users, true, nil
}

// writePrivateJSON writes v to path with mode 0600, atomically.
func writePrivateJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dev-users-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
