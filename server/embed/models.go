package embed

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// Model is a configured embedder under its name, with the dimension of
// its vectors. The name is the model's identity: every stored vector is
// recorded under it, and a node embeds a query with the model its index
// names active, found by this name.
type Model struct {
	Name     string
	Dim      int
	Embedder Embedder
}

// Models are the embedders a node is configured with, by name; one is
// the default (the model named active in a database that names none yet).
type Models struct {
	byName map[string]Model
	def    string
}

// NewModels returns def and more, each under a distinct name.
func NewModels(def Model, more ...Model) (*Models, error) {
	m := &Models{byName: map[string]Model{}, def: def.Name}
	for _, x := range append([]Model{def}, more...) {
		if x.Name == "" || x.Dim <= 0 || x.Embedder == nil {
			return nil, fmt.Errorf("embed: model %q: a name, a dimension and an embedder are needed", x.Name)
		}
		if _, dup := m.byName[x.Name]; dup {
			return nil, fmt.Errorf("embed: model %q configured twice", x.Name)
		}
		m.byName[x.Name] = x
	}
	return m, nil
}

// Get returns the model named name.
func (m *Models) Get(name string) (Model, bool) {
	x, ok := m.byName[name]
	return x, ok
}

// Default is the default model.
func (m *Models) Default() Model { return m.byName[m.def] }

// Names lists the configured names, sorted.
func (m *Models) Names() []string {
	out := make([]string, 0, len(m.byName))
	for n := range m.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Active embeds with the model a node's index names active: Name tells
// it ("" while none is named: the default). It is an Embedder whose
// Model is the active name; EmbedNamed says which model made the vectors,
// so a caller can hand the name on with them.
type Active struct {
	Models *Models
	Name   func() string
	// Stored, when set, names the database's active model: it embeds
	// for a search PostgreSQL answers (a context from ForStore), since
	// PostgreSQL refuses a vector of any other model, and a node whose
	// index lags a model switch would otherwise embed with the old one.
	Stored func() string
}

type storeKey struct{}

// ForStore marks ctx as embedding for a search PostgreSQL answers (see
// Active.Stored).
func ForStore(ctx context.Context) context.Context { return context.WithValue(ctx, storeKey{}, true) }

// ErrUnknownModel marks an active model this node is not configured with.
var ErrUnknownModel = errors.New("embed: the active embedding model is not configured on this node")

// current is the active model: the database's for a search PostgreSQL
// answers (ForStore), the index's otherwise.
func (a *Active) current(ctx context.Context) (Model, error) {
	name := ""
	if forStore, _ := ctx.Value(storeKey{}).(bool); forStore && a.Stored != nil {
		name = a.Stored()
	} else if a.Name != nil {
		name = a.Name()
	}
	if name == "" {
		return a.Models.Default(), nil
	}
	m, ok := a.Models.Get(name)
	if !ok {
		return m, fmt.Errorf("%w: %s (configured: %v)", ErrUnknownModel, name, a.Models.Names())
	}
	return m, nil
}

// Model implements Embedder: the active model's name.
func (a *Active) Model() string {
	m, err := a.current(context.Background())
	if err != nil {
		return a.Name()
	}
	return m.Name
}

// Embed implements Embedder with the active model.
func (a *Active) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	vs, _, err := a.EmbedNamed(ctx, texts)
	return vs, err
}

// EmbedNamed embeds with the active model and names it.
func (a *Active) EmbedNamed(ctx context.Context, texts []string) ([][]float32, string, error) {
	m, err := a.current(ctx)
	if err != nil {
		return nil, "", err
	}
	vs, err := m.Embedder.Embed(ctx, texts)
	return vs, m.Name, err
}

// Named embeds texts with e and names the model that made the vectors:
// the active one for an embedder that follows it (Active, or one wrapping
// it), e's Model otherwise.
func Named(ctx context.Context, e Embedder, texts []string) ([][]float32, string, error) {
	if ne, ok := e.(interface {
		EmbedNamed(ctx context.Context, texts []string) ([][]float32, string, error)
	}); ok {
		return ne.EmbedNamed(ctx, texts)
	}
	vs, err := e.Embed(ctx, texts)
	return vs, e.Model(), err
}
