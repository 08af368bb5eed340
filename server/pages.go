package server

import (
	"bytes"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/pdf"
)

const pngContentType = "image/png"

// defaultImageWidth is the width of a page image when ?width= is absent.
const defaultImageWidth = 1024

// maxPageNumber bounds the page numbers parsed (far above MaxPages).
const maxPageNumber = 1_000_000

// pageRoutes serve a project's pages as images: the image itself, and
// where it is stored (for the edge, which sends the bytes itself).
func (s *Server) pageRoutes(r chi.Router) {
	r.Get("/projects/{id}/pages/{n}/image", s.pageImage)
	r.Get("/projects/{id}/pages/{n}/image/object", s.pageImageObject)
}

// pageImage sends page n of a project's PDF as a PNG ?width= pixels wide,
// drawn once and then kept in the blob store, with a strong ETag (the
// stored image's), 304 on If-None-Match, and private caching that
// revalidates, like the PDF stream.
func (s *Server) pageImage(w http.ResponseWriter, r *http.Request) {
	img, name, err := s.requestedPageImage(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Authorization")
	if blob.ETagMatch(r.Header.Get("If-None-Match"), img.info.ETag) {
		h.Set("ETag", img.info.ETag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body, info := io.Reader(bytes.NewReader(img.png)), img.info
	if img.png == nil {
		rc, stored, err := s.blob.Open(r.Context(), img.key, nil)
		if err != nil {
			s.WriteError(w, r, err)
			return
		}
		defer rc.Close()
		body, info = rc, stored
	}
	h.Set("ETag", info.ETag)
	h.Set("Content-Type", pngContentType)
	h.Set("Content-Disposition", inlineDisposition(name))
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.WriteHeader(http.StatusOK)
	io.Copy(w, body) //nolint:errcheck // the client went away
}

// pageImageObject tells a caller who may view a project where the image
// of one of its pages is stored, drawing it first when it is missing, so
// that the edge can send the bytes from object storage itself.
func (s *Server) pageImageObject(w http.ResponseWriter, r *http.Request) {
	img, name, err := s.requestedPageImage(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	noStore(w)
	WriteJSON(w, http.StatusOK, ProjectObject{Key: img.key, Size: img.info.Size, ETag: img.info.ETag,
		ContentType: pngContentType, ContentDisposition: inlineDisposition(name)})
}

// requestedPageImage checks the request's page and width, the caller's
// view permission and the project's confirmed PDF, and returns the stored
// image (drawn now if missing) and a file name for it.
func (s *Server) requestedPageImage(r *http.Request) (pageImage, string, error) {
	page, width, err := imageParams(r)
	if err != nil {
		return pageImage{}, "", err
	}
	p, err := s.viewablePDF(r)
	if err != nil {
		return pageImage{}, "", err
	}
	if p.PageCount != nil && page > *p.PageCount {
		return pageImage{}, "", NewProblem(http.StatusNotFound, CodeNotFound, "no such page")
	}
	img, err := s.ensurePageImage(r.Context(), actor(r).ID, p, page, width)
	name := strings.TrimSuffix(p.Filename, path.Ext(p.Filename)) + "-page-" + strconv.Itoa(page) + ".png"
	return img, name, err
}

// imageParams reads the page number from the path and ?width= (1024 when
// absent): 400 for anything but a page from 1 and a width in range.
func imageParams(r *http.Request) (page, width int, err error) {
	var errs []FieldError
	page, perr := strconv.Atoi(chi.URLParam(r, "n"))
	if perr != nil || page < 1 || page > maxPageNumber {
		errs = append(errs, FieldError{Field: "page", Message: "must be a page number from 1"})
	}
	width = defaultImageWidth
	if q := r.URL.Query(); q.Has("width") {
		width, perr = strconv.Atoi(q.Get("width"))
		if perr != nil || width < pdf.MinImageWidth || width > pdf.MaxImageWidth {
			errs = append(errs, FieldError{Field: "width", Message: "must be a whole number of pixels from " +
				strconv.Itoa(pdf.MinImageWidth) + " to " + strconv.Itoa(pdf.MaxImageWidth)})
		}
	}
	if len(errs) > 0 {
		return 0, 0, Invalid("the page or width is invalid", errs...)
	}
	return page, width, nil
}
