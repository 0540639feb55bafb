package delivery

import (
	"net"
	"net/smtp"
	"strings"
	"testing"

	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

func TestSMTPDelivery(t *testing.T) {
	store, err := maildrop.Open(t.TempDir(), maildrop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.AddUser("carol", "pw", ""); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{Store: store})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	msg := "Subject: hi\n\nhello\n"
	if err := smtp.SendMail(ln.Addr().String(), nil, "x@example.org", []string{"carol@example.net"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	err = smtp.SendMail(ln.Addr().String(), nil, "x@example.org", []string{"nobody@example.net"}, []byte(msg))
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("unknown recipient: %v", err)
	}
	msgs, _ := store.Messages("carol")
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	got, _ := store.ReadMessage("carol", msgs[0].UID)
	if string(got) != "Subject: hi\r\n\r\nhello\r\n" {
		t.Fatalf("%q", got)
	}
}
