package lock

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockHolderPID finds the process holding a FLOCK on f's file in
// /proc/locks ("1: FLOCK ADVISORY WRITE 1234 08:01:5678 0 EOF"); 0 when
// /proc/locks is not readable (e.g. systemd's ProcSubset=pid) or the
// holder is not listed.
func lockHolderPID(f *os.File) int {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0
	}
	want := strconv.FormatUint(uint64(unix.Major(uint64(st.Dev))), 16) + ":" + strconv.FormatUint(uint64(unix.Minor(uint64(st.Dev))), 16) + ":" + strconv.FormatUint(st.Ino, 10)
	pl, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer pl.Close()
	sc := bufio.NewScanner(pl)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// A waiting lock ("1: -> FLOCK …") is not the holder.
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		if dev := fields[5]; strings.EqualFold(dev, want) || sameDev(dev, want) {
			if pid, err := strconv.Atoi(fields[4]); err == nil && pid > 0 {
				return pid
			}
		}
	}
	return 0
}

// sameDev compares "maj:min:ino" with the device numbers as /proc/locks
// prints them (hexadecimal, zero-padded on some kernels).
func sameDev(a, b string) bool {
	pa, pb := strings.Split(a, ":"), strings.Split(b, ":")
	if len(pa) != 3 || len(pb) != 3 {
		return false
	}
	for i := range 3 {
		base := 16
		if i == 2 {
			base = 10
		}
		x, e1 := strconv.ParseUint(pa[i], base, 64)
		y, e2 := strconv.ParseUint(pb[i], base, 64)
		if e1 != nil || e2 != nil || x != y {
			return false
		}
	}
	return true
}
