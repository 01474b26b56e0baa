// Package docstest holds tests only: they keep the user documentation
// (README.md and docs/) whole. Every relative link and #anchor resolves,
// every docs page is reachable from the README, the messages that point
// users at a docs page name one that exists and ships in the release
// archives, and nothing points at a file outside the repository.
package docstest
