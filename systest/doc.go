// Package systest holds the tests that start more than one service: the
// services as libraries, in one process, each on its own port and its own
// fresh database, talking to each other only through their generated APIs,
// as in a deployment. A service's own tests stay in its package and meet
// their neighbours through fakes served over HTTP; faults/ runs the
// services as processes, to kill and starve them.
package systest
