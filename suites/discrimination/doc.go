// Package discrimination proves that the conformance specs can fail: it
// runs the suite against the reference server configured as one profile
// while expecting another, and checks that exactly the requirements on
// which the two profiles differ come out as deviations.
package discrimination
