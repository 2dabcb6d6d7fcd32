package apptest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestContractCatchesDrift feeds the contract check exchanges that break
// api/openapi.yaml in each way it must notice, and a few it must accept,
// so that the validator cannot quietly get looser.
func TestContractCatchesDrift(t *testing.T) {
	t.Parallel()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	const user = `{"id":"3f0e9c1a-6b2d-4c8e-9a7f-1d2e3c4b5a69","firstname":"Ada","lastname":"Lovelace","email":"ada@example.com",` +
		`"account_number":"4539578763621486","role":"user","active":true,"created_at":"2025-01-31T09:30:00.123456Z"}`
	problem := func(status int, code string) string {
		return `{"type":"https://paygate.dev/problems/` + code + `","title":"x","status":` + strconv.Itoa(status) +
			`,"detail":"d","instance":"/","code":"` + code + `","request_id":"r1"}`
	}
	cases := []struct {
		name               string
		method, path, body string
		token              string
		status             int
		ctype, respBody    string
		want               string // "" when the exchange conforms
	}{
		{name: "conforming user", method: "GET", path: "/v1/auth/me", token: "t", status: 200, ctype: "application/json", respBody: user},
		{name: "renamed member", method: "GET", path: "/v1/auth/me", token: "t", status: 200, ctype: "application/json",
			respBody: strings.Replace(user, `"email"`, `"mail"`, 1), want: `property "email" is missing`},
		{name: "undocumented status", method: "GET", path: "/v1/auth/me", token: "t", status: 409, ctype: "application/problem+json",
			respBody: problem(409, "EMAIL_TAKEN"), want: "status is not supported"},
		{name: "code not listed for the operation", method: "GET", path: "/v1/auth/me", token: "t", status: 401, ctype: "application/problem+json",
			respBody: problem(401, "INVALID_CREDENTIALS"), want: "value is not one of the allowed values"},
		{name: "error as JSON rather than problem", method: "GET", path: "/v1/users/3f0e9c1a-6b2d-4c8e-9a7f-1d2e3c4b5a69", token: "t", status: 404,
			ctype: "application/json", respBody: problem(404, "NOT_FOUND"), want: "response header Content-Type has unexpected value"},
		{name: "body where none is documented", method: "DELETE", path: "/v1/users/3f0e9c1a-6b2d-4c8e-9a7f-1d2e3c4b5a69", token: "t", status: 204,
			ctype: "application/json", respBody: `{}`, want: "the spec documents none"},
		{name: "invalid request accepted", method: "POST", path: "/v1/auth/login", body: `{"email":"a@b.c","password":"p","role":"admin"}`,
			status: 200, ctype: "application/json", respBody: `{}`, want: "yet the server accepted it"},
		{name: "invalid request refused", method: "POST", path: "/v1/auth/login", body: `{"email":"a@b.c","password":"p","role":"admin"}`,
			status: 400, ctype: "application/problem+json", respBody: problem(400, "VALIDATION_FAILED")},
		{name: "route missing from the spec", method: "GET", path: "/v1/secret", token: "t", status: 200, ctype: "application/json",
			respBody: `{}`, want: "matches no operation"},
		{name: "unmatched route refused", method: "GET", path: "/v1/secret", status: 404, ctype: "application/problem+json",
			respBody: problem(404, "NOT_FOUND")},
		{name: "unmatched method refused with the wrong code", method: "PUT", path: "/v1/topups", status: 405, ctype: "application/problem+json",
			respBody: problem(405, "NOT_FOUND"), want: "value is not one of the allowed values"},
		{name: "no token on a protected operation accepted", method: "GET", path: "/v1/saldo", status: 200, ctype: "application/json",
			respBody: `{"user_id":"3f0e9c1a-6b2d-4c8e-9a7f-1d2e3c4b5a69","account_number":"4539578763621486","currency":"IDR","balance":1,"available":1,"held":0}`,
			want:     "no bearer token"},
		{name: "local time instead of UTC", method: "GET", path: "/v1/auth/me", token: "t", status: 200, ctype: "application/json",
			respBody: strings.Replace(user, "09:30:00.123456Z", "16:30:00.123456+07:00", 1), want: "/created_at"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, "http://gateway.test"+tc.path, body)
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{}}
			resp.Header.Set("X-Request-Id", "r1")
			resp.Header.Set("Content-Type", tc.ctype)
			if tc.status == 401 {
				resp.Header.Set("WWW-Authenticate", `Bearer realm="paygate"`)
			}
			got := c.check(req, []byte(tc.body), resp, []byte(tc.respBody))
			switch {
			case tc.want == "" && got != "":
				t.Fatalf("a conforming exchange was refused:\n%s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Fatalf("want a report containing %q, got:\n%s", tc.want, got)
			}
		})
	}
}
