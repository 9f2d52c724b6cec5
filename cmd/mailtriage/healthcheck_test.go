package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready":
			fmt.Fprintln(w, "ready")
		case "/not-ready":
			http.Error(w, "mailbox support: no successful cycle yet", http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		url  string
		code int
		says string
	}{
		{"ready", srv.URL + "/ready", exitOK, ""},
		{"not ready names what", srv.URL + "/not-ready", exitFail, "no successful cycle yet"},
		{"wrong path", srv.URL + "/nothing", exitFail, "404"},
		{"nobody listening", "http://" + freeAddr(t) + "/readyz", exitFail, "connection refused"},
	} {
		var stdout, stderr bytes.Buffer
		if code := dispatch([]string{"healthcheck", "--url", tc.url}, &stdout, &stderr); code != tc.code {
			t.Errorf("%s: exit %d, want %d (%s)", tc.name, code, tc.code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%s: stderr %q lacks %q", tc.name, stderr.String(), tc.says)
		}
	}
}
