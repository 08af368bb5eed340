package server

import "github.com/sostenuto/sostenuto/server/access"

// Matrix rows of page images: view permission, like the PDF stream; the
// image is drawn for each cell's fresh project (64 pixels wide, cheap).
func init() {
	matrix["GET /api/projects/{id}/pages/{n}/image"] = routeSpec{objects: projectObjects,
		request: projectReq("GET", "/pages/1/image?width=64", nil), want: needs(access.View, 200)}
	matrix["GET /api/projects/{id}/pages/{n}/image/object"] = routeSpec{objects: projectObjects,
		request: projectReq("GET", "/pages/2/image/object?width=64", nil), want: needs(access.View, 200)}
}
