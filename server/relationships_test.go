package server

import (
	"testing"
)

func TestRelationships(t *testing.T) {
	a := newAPI(t)
	teacher := a.register("teacher@example.com", "teacher")
	other := a.register("other-teacher@example.com", "teacher")
	s1 := a.register("s1@example.com", "student")
	s2 := a.register("s2@example.com", "student")
	stranger := a.register("stranger@example.com", "student")
	admin := a.admin("admin@example.com")

	var byEmail, byID relationshipResponse
	a.mustStatus(a.call("POST", "/api/relationships", teacher.AccessToken, map[string]string{"student_email": "S1@example.com"}), 201).decode(t, &byEmail)
	if byEmail.TeacherID != teacher.User.ID || byEmail.StudentID != s1.User.ID {
		t.Errorf("relationship %+v", byEmail)
	}
	a.mustStatus(a.call("POST", "/api/relationships", teacher.AccessToken, map[string]any{"student_id": s2.User.ID}), 201).decode(t, &byID)

	for name, tc := range map[string]struct {
		token  string
		body   any
		status int
	}{
		"duplicate":                       {teacher.AccessToken, map[string]any{"student_id": s1.User.ID}, 409},
		"student may not":                 {s1.AccessToken, map[string]any{"student_id": s2.User.ID}, 403},
		"teacher names another":           {teacher.AccessToken, map[string]any{"student_id": stranger.User.ID, "teacher_id": other.User.ID}, 403},
		"not a student":                   {teacher.AccessToken, map[string]any{"student_id": other.User.ID}, 400},
		"unknown email":                   {teacher.AccessToken, map[string]any{"student_email": "ghost@example.com"}, 404},
		"unknown id":                      {teacher.AccessToken, map[string]any{"student_id": "7d3c1d0e-0000-4000-8000-000000000000"}, 404},
		"both fields":                     {teacher.AccessToken, map[string]any{"student_id": s1.User.ID, "student_email": "s1@example.com"}, 400},
		"neither field":                   {teacher.AccessToken, map[string]any{}, 400},
		"malformed id":                    {teacher.AccessToken, map[string]any{"student_id": "not-a-uuid"}, 400},
		"admin without teacher_id":        {admin.AccessToken, map[string]any{"student_id": stranger.User.ID}, 400},
		"admin, teacher_id not a teacher": {admin.AccessToken, map[string]any{"student_id": stranger.User.ID, "teacher_id": s1.User.ID}, 400},
		"anonymous":                       {"", map[string]any{"student_id": s1.User.ID}, 401},
	} {
		t.Run(name, func(t *testing.T) {
			r := a.call("POST", "/api/relationships", tc.token, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			r.problem(t)
		})
	}
	var byAdmin relationshipResponse
	a.mustStatus(a.call("POST", "/api/relationships", admin.AccessToken, map[string]any{"student_id": stranger.User.ID, "teacher_id": other.User.ID}), 201).decode(t, &byAdmin)
	if byAdmin.TeacherID != other.User.ID {
		t.Errorf("admin-made relationship %+v", byAdmin)
	}

	count := func(token string) int {
		var l List[relationshipResponse]
		a.mustStatus(a.call("GET", "/api/relationships", token, nil), 200).decode(t, &l)
		return len(l.Items)
	}
	for name, tc := range map[string]struct {
		token string
		want  int
	}{"teacher": {teacher.AccessToken, 2}, "student": {s1.AccessToken, 1}, "other teacher": {other.AccessToken, 1}, "admin": {admin.AccessToken, 3}} {
		if got := count(tc.token); got != tc.want {
			t.Errorf("%s sees %d relationships, want %d", name, got, tc.want)
		}
	}

	// Pagination.
	var p1, p2 List[relationshipResponse]
	a.mustStatus(a.call("GET", "/api/relationships?limit=2", admin.AccessToken, nil), 200).decode(t, &p1)
	if len(p1.Items) != 2 || p1.NextCursor == nil {
		t.Fatalf("first page %+v", p1)
	}
	a.mustStatus(a.call("GET", "/api/relationships?limit=2&cursor="+*p1.NextCursor, admin.AccessToken, nil), 200).decode(t, &p2)
	if len(p2.Items) != 1 || p2.NextCursor != nil || p2.Items[0].ID == p1.Items[0].ID || p2.Items[0].ID == p1.Items[1].ID {
		t.Errorf("second page %+v", p2)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "cursor=!!!", "cursor=bm90LWpzb24"} {
		if r := a.call("GET", "/api/relationships?"+q, admin.AccessToken, nil); r.status != 400 {
			t.Errorf("?%s: %d", q, r.status)
		}
	}

	// Delete: strangers and the other teacher see nothing (404); the student may leave.
	a.mustStatus(a.call("DELETE", "/api/relationships/"+byEmail.ID.String(), stranger.AccessToken, nil), 404)
	a.mustStatus(a.call("DELETE", "/api/relationships/"+byEmail.ID.String(), other.AccessToken, nil), 404)
	a.mustStatus(a.call("DELETE", "/api/relationships/"+byEmail.ID.String(), s1.AccessToken, nil), 204)
	a.mustStatus(a.call("DELETE", "/api/relationships/"+byEmail.ID.String(), teacher.AccessToken, nil), 404)
	a.mustStatus(a.call("DELETE", "/api/relationships/"+byID.ID.String(), teacher.AccessToken, nil), 204)
	a.mustStatus(a.call("DELETE", "/api/relationships/"+byAdmin.ID.String(), admin.AccessToken, nil), 204)
	a.mustStatus(a.call("DELETE", "/api/relationships/not-a-uuid", admin.AccessToken, nil), 404)
	if got := count(admin.AccessToken); got != 0 {
		t.Errorf("%d relationships left", got)
	}
}
