// Package devscripts holds the tests of the developer scripts in
// scripts/ (make run's start and stop); it has no code of its own.
package devscripts
