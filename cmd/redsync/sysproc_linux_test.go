//go:build linux

package main

import "testing"

func TestHidepid(t *testing.T) {
	const plain = "22 1 0:5 / /dev rw - devtmpfs udev rw\n"
	tests := []struct {
		name, mountinfo, want string
	}{
		{"no option", plain + "24 1 0:22 / /proc rw,nosuid - proc proc rw\n", ""},
		{"hidepid=0", "24 1 0:22 / /proc rw - proc proc rw,hidepid=0\n", ""},
		{"hidepid=off", "24 1 0:22 / /proc rw - proc proc rw,hidepid=off\n", ""},
		{"hidepid=2", "24 1 0:22 / /proc rw - proc proc rw,hidepid=2,gid=10\n", "2"},
		{"optional fields", "24 1 0:22 / /proc rw shared:12 master:1 - proc proc rw,hidepid=invisible\n", "invisible"},
		{"the last mount counts", "24 1 0:22 / /proc rw - proc proc rw,hidepid=2\n30 24 0:40 / /proc rw - proc proc rw\n", ""},
		{"another mount point", "24 1 0:22 / /mnt/proc rw - proc proc rw,hidepid=2\n", ""},
		{"not proc", "24 1 0:22 / /proc rw - tmpfs tmpfs rw,hidepid=2\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hidepid([]byte(tt.mountinfo)); got != tt.want {
				t.Errorf("hidepid(%q) = %q, want %q", tt.mountinfo, got, tt.want)
			}
		})
	}
}
