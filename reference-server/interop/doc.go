// Package interop checks the reference server with real POP3 clients from
// Debian's packages (curl, fetchmail) over plain TCP, STLS and implicit
// TLS. The tests are the package; there is no code to import.
package interop
