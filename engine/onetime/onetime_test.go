package onetime

import (
	"testing"
	"time"
)

func TestStore(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New[string](2*time.Minute, func() time.Time { return now })
	a, err := s.Issue("a")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 64 {
		t.Fatalf("token %q: want 64 hex digits (256 bits)", a)
	}
	b, _ := s.Issue("b")
	if a == b {
		t.Fatal("two tokens are the same")
	}
	if _, ok := s.Redeem(""); ok {
		t.Fatal("empty token redeemed")
	}
	if _, ok := s.Redeem(a + "0"); ok {
		t.Fatal("wrong token redeemed")
	}
	if v, ok := s.Redeem(a); !ok || v != "a" {
		t.Fatalf("Redeem(a) = %q, %v; want a, true", v, ok)
	}
	if _, ok := s.Redeem(a); ok {
		t.Fatal("token redeemed twice")
	}
	now = now.Add(2 * time.Minute)
	if _, ok := s.Redeem(b); ok {
		t.Fatal("expired token redeemed")
	}
	c, _ := s.Issue("c")
	s.Clear()
	if _, ok := s.Redeem(c); ok {
		t.Fatal("cleared token redeemed")
	}
}
