package identity

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"smartgate/internal/audit"
	"smartgate/internal/config"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// UpstreamIdentity is what an upstream OpenID Connect provider asserted
// about the person who signed in there, read from an id_token (and its
// UserInfo response) that the caller has verified in full. The stable key
// is (Provider, Subject): OpenID Connect Core §5.7 says only iss and sub
// together identify an end-user; email and the rest may change or be
// reassigned.
type UpstreamIdentity struct {
	Provider      string
	Subject       string
	Email         string
	EmailVerified bool
	// FHIRUser is the fhirUser claim as a relative reference (Patient/123);
	// the caller strips this server's FHIR base from an absolute one.
	FHIRUser string
	// Role is the role the role or groups claim gives through the
	// provider's mapping ("" for none); it counts only with trust_roles.
	Role string
	// AMR are the provider's authentication methods (RFC 8176), if it said.
	AMR []string
}

// rolePrecedence orders roles when the claims give several: the most
// privileged wins, as a member of both a clinicians and an admins group
// expects.
var rolePrecedence = []string{store.RoleAdmin, store.RolePractitioner, store.RoleRelatedPerson, store.RolePatient}

var amrValueRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ClaimsIdentity reads an UpstreamIdentity from verified claims with the
// provider's claim mapping (config.ProviderClaims).
func ClaimsIdentity(p config.Provider, sub string, claims map[string]any) UpstreamIdentity {
	id := UpstreamIdentity{Provider: p.ID, Subject: sub}
	id.Email, _ = claimValue(claims, p.EmailClaim()).(string)
	id.Email = strings.TrimSpace(id.Email)
	switch v := claimValue(claims, p.EmailVerifiedClaim()).(type) {
	case bool:
		id.EmailVerified = v
	case string: // some providers (AWS Cognito) send "true"
		id.EmailVerified = v == "true"
	}
	id.FHIRUser, _ = claimValue(claims, p.FHIRUserClaim()).(string)
	var roles []string
	if p.Claims.Role != "" {
		for _, v := range claimStrings(claimValue(claims, p.Claims.Role)) {
			if r, ok := p.Claims.GroupRoles[v]; ok {
				roles = append(roles, r)
			} else if CheckRole(v) == nil {
				roles = append(roles, v)
			}
		}
	}
	if p.Claims.Groups != "" {
		for _, g := range claimStrings(claimValue(claims, p.Claims.Groups)) {
			if r, ok := p.Claims.GroupRoles[g]; ok {
				roles = append(roles, r)
			}
		}
	}
	for _, r := range rolePrecedence {
		if slices.Contains(roles, r) {
			id.Role = r
			break
		}
	}
	for _, a := range claimStrings(claims["amr"]) {
		if amrValueRE.MatchString(a) && len(id.AMR) < 8 {
			id.AMR = append(id.AMR, a)
		}
	}
	return id
}

// claimValue returns the claim name, or, when no claim has that name and
// it has dots, the value at that path through nested objects (Keycloak's
// realm_access.roles).
func claimValue(claims map[string]any, name string) any {
	if v, ok := claims[name]; ok || !strings.Contains(name, ".") {
		return v
	}
	var cur any = claims
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// claimStrings reads a claim that is one string or a list of strings.
func claimStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []string:
		return x
	case []any:
		var out []string
		for _, it := range x {
			if s, ok := it.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// NotLinkedError says that an upstream identity is linked to no user and
// could be neither matched nor provisioned, and why: the page shows the
// administrator's command with the real provider and subject.
type NotLinkedError struct {
	Provider, ProviderName, Subject, Email string
	Reasons                                []string
}

func (e *NotLinkedError) Error() string {
	return fmt.Sprintf("upstream identity %s of provider %s is not linked: %s", e.Subject, e.Provider, strings.Join(e.Reasons, "; "))
}

// Problem is the catalogue error of e, for the log and the error page.
func (e *NotLinkedError) Problem() *problem.Error {
	return problem.Wrap(problem.UpstreamNotLinked, e, "your %s account (subject %s) is not linked to a user here: %s. An administrator can link it with: smartgate user link --username USERNAME --provider %s --subject %s",
		e.ProviderName, e.Subject, strings.Join(e.Reasons, "; "), e.Provider, e.Subject)
}

// upstreamDetail is the audit detail of an upstream sign-in.
type upstreamDetail struct {
	UserID   string   `json:"user_id,omitempty"`
	Username string   `json:"username,omitempty"`
	Provider string   `json:"provider"`
	Subject  string   `json:"subject"`
	Address  string   `json:"address,omitempty"`
	Method   string   `json:"method"`        // always "upstream"
	How      string   `json:"how,omitempty"` // link, match, provision
	Reason   string   `json:"reason,omitempty"`
	AMR      []string `json:"amr,omitempty"`
}

// UpstreamFailure audits an upstream sign-in that failed before an
// identity was known (provider down, bad state, invalid id_token, the
// user cancelled): login.failure with the provider and the reason.
func (s *Service) UpstreamFailure(ctx context.Context, provider, subject, addr, reason string) {
	s.record(ctx, "anonymous", "login.failure", audit.Failure, upstreamDetail{Provider: provider, Subject: subject, Address: addr, Method: "upstream", Reason: reason})
}

// UpstreamLogin signs in the user of a verified upstream identity
// (docs/federation.md, "Linking and provisioning"):
//
//  1. a stored link (provider, sub) names the user;
//  2. else, with match_claim email and email_verified true, the user whose
//     username is the email is linked (unless it is linked to another
//     identity of the same provider already);
//  3. else, with provisioning on, a verified email in one of the listed
//     domains gets a new user (no password) with provisioning.role, or
//     the trusted role claim, and the fhirUser claim, and is linked;
//  4. else the sign-in fails with a *NotLinkedError.
//
// With trust_roles the role the claims give is stored at every sign-in.
// An administrator always owes a local TOTP code afterwards (NeedTOTP; one
// without an enrolled authenticator is refused), and so does any user who
// enrolled one. addr is the browser's address, for the audit trail.
func (s *Service) UpstreamLogin(ctx context.Context, p config.Provider, id UpstreamIdentity, addr string) (Login, error) {
	detail := upstreamDetail{Provider: p.ID, Subject: id.Subject, Address: addr, Method: "upstream", AMR: id.AMR}
	fail := func(u store.User, reason string, err error) (Login, error) {
		actor := "anonymous"
		if u.ID != "" {
			actor, detail.UserID, detail.Username = "user:"+u.ID, u.ID, u.Username
		}
		detail.Reason = reason
		s.record(ctx, actor, "login.failure", audit.Failure, detail)
		return Login{}, err
	}
	if id.Subject == "" || len(id.Subject) > 255 {
		return fail(store.User{}, "bad_subject", problem.New(problem.UpstreamIDTokenInvalid, "the provider's id_token has no usable sub (1 to 255 characters, OpenID Connect Core §2)"))
	}
	u, err := s.st.UserByLink(ctx, p.ID, id.Subject)
	detail.How = "link"
	if errors.Is(err, store.ErrNotFound) {
		var nl *NotLinkedError
		u, detail.How, err = s.firstUpstreamLogin(ctx, p, id)
		switch {
		case errors.As(err, &nl):
			return fail(store.User{}, "not_linked", err)
		case problem.IsID(err, problem.UpstreamClaimsInvalid):
			return fail(store.User{}, "claims_invalid", err)
		}
	}
	if err != nil {
		return Login{}, err
	}
	if u.Status != store.UserEnabled {
		return fail(u, "disabled", problem.New(problem.UpstreamAccountDisabled, "your %s account is linked to user %s here, which an administrator disabled; an administrator can enable it with: smartgate user enable %s", p.DisplayName(), u.Username, u.Username))
	}
	if p.TrustRoles && id.Role != "" && id.Role != u.Role && detail.How != "provision" {
		if err := CheckFHIRUser(id.Role, u.FHIRUser); err != nil {
			return fail(u, "role_conflict", problem.New(problem.UpstreamClaimsInvalid,
				"the provider gives user %s the role %s, which cannot keep the user's fhirUser %s; an administrator changes the user's fhirUser or the role mapping of provider %s", u.Username, id.Role, u.FHIRUser, p.ID))
		}
		role := id.Role
		if u, err = s.update(ctx, u, func(x *store.User) error { x.Role = role; return nil }); err != nil {
			return Login{}, err
		}
		s.record(ctx, "upstream:"+p.ID, "user.role", audit.Success, map[string]string{"user_id": u.ID, "username": u.Username, "role": role, "provider": p.ID})
	}
	if u.Role == store.RoleAdmin && !u.TOTPEnabled {
		return fail(u, "totp_not_enrolled", problem.New(problem.TOTPEnrollmentRequired,
			"user %s is an administrator, and an administrator signing in through %s must also enter a two-factor code here, but none is set up; an administrator enrolls one with: smartgate user totp-enroll --username %s", u.Username, p.DisplayName(), u.Username))
	}
	l := Login{User: u, AuthTime: s.now(), AMR: id.AMR, NeedTOTP: u.TOTPEnabled}
	if l.NeedTOTP {
		return l, nil // CompleteTOTP audits the sign-in
	}
	if err := s.st.UpdateUser(ctx, u.ID, func(x *store.User) error { x.LastLoginAt = l.AuthTime; return nil }); err != nil {
		return Login{}, err
	}
	l.User.LastLoginAt = l.AuthTime
	detail.UserID, detail.Username = u.ID, u.Username
	s.record(ctx, "user:"+u.ID, "login.success", audit.Success, detail)
	return l, nil
}

// firstUpstreamLogin links an identity seen for the first time: by a
// verified email, or by provisioning. how is "match" or "provision".
func (s *Service) firstUpstreamLogin(ctx context.Context, p config.Provider, id UpstreamIdentity) (u store.User, how string, err error) {
	nl := &NotLinkedError{Provider: p.ID, ProviderName: p.DisplayName(), Subject: id.Subject, Email: id.Email}
	emailOK := false
	switch {
	case id.Email == "":
		nl.Reasons = append(nl.Reasons, fmt.Sprintf("the provider sent no email (claim %s)", p.EmailClaim()))
	case !id.EmailVerified:
		nl.Reasons = append(nl.Reasons, fmt.Sprintf("the provider does not say that the email %s is verified (claim %s is not true)", id.Email, p.EmailVerifiedClaim()))
	default:
		emailOK = true
	}
	link := func(u store.User, how string) (store.User, string, error) {
		err := s.st.LinkUser(ctx, store.UserLink{UserID: u.ID, Provider: p.ID, Subject: id.Subject, CreatedAt: s.now()})
		if errors.Is(err, store.ErrConflict) {
			// A concurrent first sign-in of the same identity linked it.
			u, err = s.st.UserByLink(ctx, p.ID, id.Subject)
			return u, "link", err
		}
		if err != nil {
			return u, how, err
		}
		s.record(ctx, "upstream:"+p.ID, "user.link", audit.Success, map[string]string{"user_id": u.ID, "username": u.Username, "provider": p.ID, "subject": id.Subject, "how": how})
		return u, how, nil
	}

	if p.Match() != config.MatchEmail {
		nl.Reasons = append(nl.Reasons, "this provider does not match identities to existing users by email (match_claim is none)")
	} else if emailOK {
		u, err := s.st.GetUserByUsername(ctx, id.Email)
		switch {
		case errors.Is(err, store.ErrNotFound) || CheckUsername(id.Email) != nil:
			nl.Reasons = append(nl.Reasons, fmt.Sprintf("no user here has the username %s", id.Email))
		case err != nil:
			return u, "", err
		default:
			links, err := s.st.ListUserLinks(ctx, u.ID)
			if err != nil {
				return u, "", err
			}
			if slices.ContainsFunc(links, func(l store.UserLink) bool { return l.Provider == p.ID }) {
				nl.Reasons = append(nl.Reasons, fmt.Sprintf("user %s is linked to another %s identity already", u.Username, p.DisplayName()))
			} else {
				return link(u, "match")
			}
		}
	}

	pv := p.Provisioning
	if !pv.Enabled {
		nl.Reasons = append(nl.Reasons, "accounts are not created automatically for this provider (provisioning is off)")
		return u, "", nl
	}
	if !emailOK {
		return u, "", nl // the reason is given above
	}
	_, domain, _ := strings.Cut(id.Email, "@")
	if !slices.Contains(pv.EmailDomains, strings.ToLower(domain)) {
		nl.Reasons = append(nl.Reasons, fmt.Sprintf("accounts are created automatically only for %s addresses, not for %s", strings.Join(pv.EmailDomains, ", "), id.Email))
		return u, "", nl
	}
	role := p.ProvisionRole()
	if p.TrustRoles && id.Role != "" {
		role = id.Role
	}
	if err := CheckUsername(id.Email); err != nil {
		return u, "", problem.New(problem.UpstreamClaimsInvalid, "the email %q cannot be a username here (1 to 64 characters: ASCII letters, digits and . _ @ + -), so no account can be created for it; an administrator creates one by hand and links it", id.Email)
	}
	if err := CheckFHIRUser(role, id.FHIRUser); err != nil {
		return u, "", problem.New(problem.UpstreamClaimsInvalid, "the provider's fhirUser claim (%s) is %q, which a %s cannot have: a %s's fhirUser is a relative reference like %s/123; an administrator corrects the user's attribute or mapper at the provider",
			p.FHIRUserClaim(), id.FHIRUser, role, role, fhirUserTypes[role][0])
	}
	u, err = s.CreateUser(ctx, NewUser{Username: id.Email, Role: role, FHIRUser: id.FHIRUser}, "upstream:"+p.ID)
	if problem.IsID(err, problem.UserExists) {
		nl.Reasons = append(nl.Reasons, fmt.Sprintf("a user named %s exists already and could not be matched", id.Email))
		return u, "", nl
	}
	if err != nil {
		return u, "", err
	}
	return link(u, "provision")
}
