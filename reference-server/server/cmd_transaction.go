package server

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

// size is what STAT and LIST report for message i: exact octets or the
// emulated storage size (2.1.4, 2.1.5; profile.StoredSize).
func (s *session) size(i int) int64 { return s.prof.StoredSize(s.msgs[i].Size) }

// totals counts the messages not marked deleted.
func (s *session) totals() (n int, octets int64) {
	for i := range s.msgs {
		if !s.deleted[i] {
			n++
			octets += s.size(i)
		}
	}
	return n, octets
}

// extra is what follows the sizes: nothing (V0004, V0005), unless the
// profile asks for more to show that a check can tell the difference.
func (s *session) extra(note string) string {
	if !s.prof.ExtraAfterSizes {
		return ""
	}
	return " " + note
}

// msgNumber parses a message-number argument and answers -ERR itself when
// it is not a live message of this session.
func (s *session) msgNumber(arg string) (int, bool) {
	n, ok := parseDecimal(arg)
	if !ok {
		s.err("", profile.Text(s.prof.Replies.BadArgument, "Invalid message number"))
		return 0, false
	}
	if n < 1 || n > len(s.msgs) {
		s.err("", profile.Text(s.prof.Replies.NoSuchMessage, fmt.Sprintf("No such message: %d", n)))
		return 0, false
	}
	if s.deleted[n-1] {
		s.err("", profile.Text(s.prof.Replies.MessageDeleted, fmt.Sprintf("Message %d is deleted", n)))
		return 0, false
	}
	return n - 1, true
}

// parseDecimal accepts 1..9 ASCII digits, no sign.
func parseDecimal(arg string) (int, bool) {
	if arg == "" || len(arg) > 9 {
		return 0, false
	}
	for _, c := range []byte(arg) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(arg)
	return n, err == nil
}

// argCount answers a command with the wrong number of arguments.
func (s *session) argCount(builtin string) {
	s.err("", profile.Text(s.prof.Replies.ArgumentCount, builtin))
}

func (s *session) noArgs(cmd command) bool {
	if len(cmd.Args) != 0 {
		s.argCount(cmd.Keyword + " takes no argument")
		return false
	}
	return true
}

func (s *session) cmdStat(cmd command) {
	if !s.noArgs(cmd) {
		return
	}
	n, octets := s.totals()
	s.ok(fmt.Sprintf("%d %d%s", n, octets, s.extra("(maildrop snapshot)")))
}

func (s *session) cmdList(cmd command) {
	switch len(cmd.Args) {
	case 0:
		n, octets := s.totals()
		s.ok(fmt.Sprintf("%d messages (%d octets)", n, octets))
		for i := range s.msgs {
			if !s.deleted[i] {
				s.writeLine(fmt.Sprintf("%d %d%s", i+1, s.size(i), s.extra("uid="+s.msgs[i].UID)))
			}
		}
		s.writeLine(".")
	case 1:
		if i, ok := s.msgNumber(cmd.Args[0]); ok {
			s.ok(fmt.Sprintf("%d %d%s", i+1, s.size(i), s.extra("uid="+s.msgs[i].UID)))
		}
	default:
		s.argCount("LIST takes at most one argument")
	}
}

func (s *session) cmdUIDL(cmd command) {
	switch len(cmd.Args) {
	case 0:
		s.ok(profile.Text(s.prof.Replies.UIDL, "Unique-id listing follows"))
		for i := range s.msgs {
			if !s.deleted[i] {
				s.writeLine(fmt.Sprintf("%d %s", i+1, s.msgs[i].UID))
			}
		}
		s.writeLine(".")
	case 1:
		if i, ok := s.msgNumber(cmd.Args[0]); ok {
			s.ok(fmt.Sprintf("%d %s", i+1, s.msgs[i].UID))
		}
	default:
		s.argCount("UIDL takes at most one argument")
	}
}

func (s *session) cmdRetr(cmd command) {
	if len(cmd.Args) != 1 {
		s.argCount("RETR takes one argument: a message number")
		return
	}
	if i, ok := s.msgNumber(cmd.Args[0]); ok {
		s.send(i, -1)
	}
}

func (s *session) cmdTop(cmd command) {
	if len(cmd.Args) != 2 {
		s.argCount("TOP takes two arguments: a message number and a line count")
		return
	}
	i, ok := s.msgNumber(cmd.Args[0])
	if !ok {
		return
	}
	lines, ok := parseDecimal(cmd.Args[1])
	if !ok {
		s.err("", profile.Text(s.prof.Replies.BadArgument, "Invalid line count"))
		return
	}
	s.send(i, lines)
}

// send writes message i whole (top < 0) or its header and top body lines.
// The message is opened before +OK, so a message removed since login gets
// a clean -ERR (C0004).
func (s *session) send(i, top int) {
	rc, err := s.md.Open(s.msgs[i].UID)
	if errors.Is(err, maildrop.ErrRemoved) {
		s.err("", profile.Text(s.prof.Replies.MessageDeleted, fmt.Sprintf("Message %d was removed from the mailbox", i+1)))
		return
	}
	if err != nil {
		s.log.Error("open message", "uid", s.msgs[i].UID, "err", err)
		s.err(codeSysTemp, "Cannot read the message, try again later")
		return
	}
	defer rc.Close()
	if top < 0 {
		s.ok(profile.Text(s.prof.Replies.Retr, fmt.Sprintf("%d octets", s.size(i))))
	} else {
		s.ok(profile.Text(s.prof.Replies.Top, "Top of message follows"))
	}
	if err := s.copyBody(rc, top, s.msgs[i].Size); err != nil {
		// Half a multi-line response cannot be taken back: hang up.
		s.log.Error("send message", "uid", s.msgs[i].UID, "err", err)
		s.done = true
	}
}

func (s *session) cmdDele(cmd command) {
	if len(cmd.Args) != 1 {
		s.argCount("DELE takes one argument: a message number")
		return
	}
	i, ok := s.msgNumber(cmd.Args[0])
	if !ok {
		return
	}
	if s.prof.DeletesAtDELE() {
		// dele_applies: immediately imitates servers that move the
		// message away at once, against RFC 1939 section 5.
		if err := s.md.Remove(s.msgs[i].UID); err != nil {
			s.log.Error("immediate delete", "uid", s.msgs[i].UID, "err", err)
			s.err(codeSysTemp, "Cannot delete the message, try again later")
			return
		}
		s.log.Info("message removed at DELE", "uid", s.msgs[i].UID)
	}
	s.deleted[i] = true
	s.ok(profile.Text(s.prof.Replies.Dele, fmt.Sprintf("Message %d deleted", i+1)))
}

func (s *session) cmdNoop(cmd command) {
	if s.noArgs(cmd) {
		s.ok(profile.Text(s.prof.Replies.Noop, ""))
	}
}

func (s *session) cmdRset(cmd command) {
	if !s.noArgs(cmd) {
		return
	}
	if !s.prof.DeletesAtDELE() {
		// Under dele_applies: immediately the messages are gone already;
		// RSET cannot bring them back and they stay out of the listings.
		clear(s.deleted)
	}
	n, octets := s.totals()
	s.ok(profile.Text(s.prof.Replies.Rset, fmt.Sprintf("Mailbox has %d messages (%d octets)", n, octets)))
}

// update is the UPDATE state: remove exactly the messages this session
// marked, then end the session (RFC 1939 §6, V0006).
func (s *session) update() {
	var uids []string
	for i, d := range s.deleted {
		if d {
			uids = append(uids, s.msgs[i].UID)
		}
	}
	err := s.md.Commit(uids)
	s.md.Close()
	s.md = nil
	s.done = true
	if err != nil {
		s.err(codeSysTemp, "Some deleted messages were not removed")
		return
	}
	s.log.Info("update", "removed", len(uids))
	s.ok(profile.Text(s.prof.Replies.Quit, fmt.Sprintf("Bye, %d messages removed", len(uids))))
}
