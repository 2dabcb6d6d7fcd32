package notify

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

//go:embed templates/*.txt templates/*.html
var templateFS embed.FS

// Renderer renders the mail kinds from the embedded templates: per kind a
// text/template file defining "subject" and "text", and an html/template
// file defining "title" and "content" inside the shared layout, which
// escapes every value.
type Renderer struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// NewRenderer parses every template; a missing or broken one fails here,
// at start, not when its first event arrives.
func NewRenderer() (*Renderer, error) {
	r := &Renderer{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for _, kind := range Templates {
		tt, err := texttemplate.New(kind).Option("missingkey=error").
			ParseFS(templateFS, "templates/footer.txt", "templates/"+kind+".txt")
		if err != nil {
			return nil, fmt.Errorf("notify: template %s: %w", kind, err)
		}
		ht, err := htmltemplate.New(kind).Option("missingkey=error").
			ParseFS(templateFS, "templates/layout.html", "templates/"+kind+".html")
		if err != nil {
			return nil, fmt.Errorf("notify: template %s: %w", kind, err)
		}
		for _, name := range []string{"subject", "text"} {
			if tt.Lookup(name) == nil {
				return nil, fmt.Errorf("notify: template %s.txt defines no %q", kind, name)
			}
		}
		for _, name := range []string{"title", "content"} {
			if ht.Lookup(name) == nil {
				return nil, fmt.Errorf("notify: template %s.html defines no %q", kind, name)
			}
		}
		r.text[kind], r.html[kind] = tt, ht
	}
	return r, nil
}

// Render returns the subject, text and HTML bodies of kind for view.
func (r *Renderer) Render(kind string, view any) (subject, text, html string, err error) {
	tt, ht := r.text[kind], r.html[kind]
	if tt == nil || ht == nil {
		return "", "", "", fmt.Errorf("notify: no template %q", kind)
	}
	var b bytes.Buffer
	if err := tt.ExecuteTemplate(&b, "subject", view); err != nil {
		return "", "", "", fmt.Errorf("notify: render %s subject: %w", kind, err)
	}
	// One line, whatever a name in it contains.
	subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := tt.ExecuteTemplate(&b, "text", view); err != nil {
		return "", "", "", fmt.Errorf("notify: render %s text: %w", kind, err)
	}
	text = strings.TrimLeft(b.String(), "\n")
	b.Reset()
	if err := ht.ExecuteTemplate(&b, "layout", view); err != nil {
		return "", "", "", fmt.Errorf("notify: render %s html: %w", kind, err)
	}
	return subject, text, b.String(), nil
}
