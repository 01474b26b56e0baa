// Package deploytest checks the files under deploy/: the systemd units pass
// systemd-analyze, the install script puts every file with the right mode
// (and its dry run changes nothing), the example config is valid, the cron
// line is well-formed, and the Task Scheduler XML has the shape of the Task
// Scheduler schema. It has no code of its own, only tests.
package deploytest
