// Package web holds smartgate's HTML templates and static assets, embedded in
// the binary: no front-end build step, and pages work without JavaScript.
package web

import (
	"embed"
	"html/template"
	"io/fs"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Static is the tree served under /static/.
func Static() fs.FS {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	return sub
}

// Templates parses every page template with the shared layout and any
// partials the page uses (more). Each page defines "title" and "content";
// render it by executing "layout".
func Templates(page string, more ...string) *template.Template {
	files := []string{"templates/layout.html", "templates/" + page}
	for _, m := range more {
		files = append(files, "templates/"+m)
	}
	return template.Must(template.New(page).ParseFS(templateFS, files...))
}
