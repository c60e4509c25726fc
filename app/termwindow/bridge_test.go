package termwindow

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berthvm/berth/engine/terminal"
)

// decodeScript is what the page does with a script ReceiveScript made: it
// must be exactly one window.berthReceive call with a JSON argument.
func decodeScript(script string) (BridgeMessage, error) {
	arg, ok := strings.CutPrefix(script, "window.berthReceive(")
	if ok {
		arg, ok = strings.CutSuffix(arg, ");")
	}
	if !ok {
		return BridgeMessage{}, errors.New("not a window.berthReceive call: " + script)
	}
	var m BridgeMessage
	dec := json.NewDecoder(strings.NewReader(arg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return BridgeMessage{}, err
	}
	return m, nil
}

func TestReceiveScript(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	s, err := ReceiveScript(terminal.BinaryMessage, all)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeScript(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := base64.StdEncoding.DecodeString(m.D)
	if m.T != KindBinary || err != nil || !bytes.Equal(got, all) {
		t.Fatalf("binary: %+v (%v), want every byte value back", m, err)
	}

	text := `{"type":"error","message":"line\u2028sep\u2029 </script> & \"q\""}`
	s, err = ReceiveScript(terminal.TextMessage, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	// JavaScript string literals before ES2019 end at U+2028/U+2029, and
	// a script may be embedded in HTML: none of these may appear raw.
	if strings.ContainsAny(s, "\u2028\u2029<>") {
		t.Fatalf("script %q has a raw U+2028, U+2029, < or >", s)
	}
	if m, err = decodeScript(s); err != nil || m.T != KindText || m.D != text {
		t.Fatalf("text: %+v (%v), want %q", m, err, text)
	}

	if _, err := ReceiveScript(terminal.MessageType(9), nil); err == nil {
		t.Fatal("ReceiveScript of an unknown type: no error")
	}
}

// recordingPage is a fake Page: it records the messages of the scripts it
// is given instead of running them in a web view (there is none on
// Linux); fail, when set, is the error every script gets.
type recordingPage struct {
	msgs chan BridgeMessage
	fail error
	hold chan struct{} // when not nil, done waits for it
}

func newRecordingPage() *recordingPage { return &recordingPage{msgs: make(chan BridgeMessage, 1<<16)} }

func (p *recordingPage) EvaluateJavaScript(script string, done func(error)) {
	if p.fail != nil {
		done(p.fail)
		return
	}
	m, err := decodeScript(script)
	if err != nil {
		done(err)
		return
	}
	p.msgs <- m
	if p.hold != nil {
		go func() { <-p.hold; done(nil) }()
		return
	}
	done(nil)
}

func TestConnCarriesBothWays(t *testing.T) {
	ctx := context.Background()
	p := newRecordingPage()
	var texts []string
	c := NewConn(p, func(b []byte) { texts = append(texts, string(b)) })

	c.Deliver(terminal.TextMessage, []byte(`{"type":"resize","cols":80,"rows":24}`))
	c.Deliver(terminal.BinaryMessage, []byte("ls\r"))
	for _, want := range []struct {
		typ  terminal.MessageType
		data string
	}{{terminal.TextMessage, `{"type":"resize","cols":80,"rows":24}`}, {terminal.BinaryMessage, "ls\r"}} {
		typ, data, err := c.ReadMessage(ctx)
		if err != nil || typ != want.typ || string(data) != want.data {
			t.Fatalf("ReadMessage = %d %q %v, want %d %q", typ, data, err, want.typ, want.data)
		}
	}

	if err := c.WriteMessage(ctx, terminal.TextMessage, []byte(`{"type":"hello"}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(ctx, terminal.BinaryMessage, []byte("out\x00\xff")); err != nil {
		t.Fatal(err)
	}
	if m := <-p.msgs; m != (BridgeMessage{KindText, `{"type":"hello"}`}) {
		t.Fatalf("first message to the page %+v", m)
	}
	if m := <-p.msgs; m != (BridgeMessage{KindBinary, base64.StdEncoding.EncodeToString([]byte("out\x00\xff"))}) {
		t.Fatalf("second message to the page %+v", m)
	}
	if len(texts) != 1 || texts[0] != `{"type":"hello"}` {
		t.Fatalf("onText saw %q, want the one text message", texts)
	}
}

func TestConnReadWaitsAndEnds(t *testing.T) {
	c := NewConn(newRecordingPage(), nil)
	got := make(chan string, 1)
	go func() {
		_, data, err := c.ReadMessage(context.Background())
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(data)
	}()
	time.Sleep(20 * time.Millisecond)
	c.Deliver(terminal.BinaryMessage, []byte("late"))
	if s := <-got; s != "late" {
		t.Fatalf("a waiting ReadMessage got %q, want the message delivered after it began", s)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := c.ReadMessage(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadMessage past its context: %v", err)
	}

	c.Deliver(terminal.BinaryMessage, []byte("unread"))
	c.Close()
	c.Close()
	if _, _, err := c.ReadMessage(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadMessage after Close: %v, want ErrClosed (even with a message queued)", err)
	}
	if err := c.WriteMessage(context.Background(), terminal.BinaryMessage, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteMessage after Close: %v, want ErrClosed", err)
	}
}

func TestConnWriteWaitsForThePage(t *testing.T) {
	p := newRecordingPage()
	p.hold = make(chan struct{})
	c := NewConn(p, nil)
	res := make(chan error, 1)
	go func() { res <- c.WriteMessage(context.Background(), terminal.BinaryMessage, []byte("x")) }()
	<-p.msgs
	select {
	case err := <-res:
		t.Fatalf("WriteMessage returned (%v) before the page ran the script", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(p.hold)
	if err := <-res; err != nil {
		t.Fatal(err)
	}

	// A page that never answers: Close ends the wait.
	p.hold = make(chan struct{})
	go func() { res <- c.WriteMessage(context.Background(), terminal.BinaryMessage, []byte("y")) }()
	<-p.msgs
	c.Close()
	if err := <-res; !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteMessage interrupted by Close: %v", err)
	}
	close(p.hold)

	p2 := newRecordingPage()
	p2.fail = errors.New("ReferenceError: berthReceive is not defined")
	err := NewConn(p2, nil).WriteMessage(context.Background(), terminal.TextMessage, []byte("{}"))
	if err == nil || !strings.Contains(err.Error(), "berthReceive is not defined") {
		t.Fatalf("WriteMessage to a failing page: %v", err)
	}
}

func TestConnBoundsUnreadInput(t *testing.T) {
	c := NewConn(newRecordingPage(), nil)
	chunk := make([]byte, 1<<20)
	for range maxQueued >> 20 {
		c.Deliver(terminal.BinaryMessage, chunk)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("closed at exactly the limit: %v", err)
	}
	c.Deliver(terminal.BinaryMessage, []byte("one more"))
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "has not read") {
		t.Fatalf("past the limit: %v, want the conn closed saying why", err)
	}
	if _, _, err := c.ReadMessage(context.Background()); err == nil {
		t.Fatal("ReadMessage after overflow: no error")
	}
}
