package redsync

import (
	"strings"
	"testing"
)

func TestKeySlot(t *testing.T) {
	tests := []struct {
		key  string
		want uint16
	}{
		// Values given by CLUSTER KEYSLOT of redis-server 7.0.
		{"foo", 12182},
		{"bar", 5061},
		{"123456789", 0x31C3 % 16384}, // the CRC-16/XMODEM check value
		{"{user1000}.following", keySlot("user1000")},
		{"a{}b", crc16("a{}b") % 16384}, // empty tag: the whole key
		{"a{b", crc16("a{b") % 16384},   // no closing brace
		{"a}b{c}", keySlot("c")},        // the first "{" counts
		{"{x}{y}", keySlot("x")},        // only the first tag
		{"{{x}}", crc16("{x") % 16384},  // tag up to the first "}"
		{"", 0},
	}
	for _, tt := range tests {
		if got := keySlot(tt.key); got != tt.want {
			t.Errorf("keySlot(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func TestSlotTags(t *testing.T) {
	for slot := range uint16(16384) {
		tag := slotTag(slot)
		if strings.ContainsAny(tag, "{}") || tag == "" {
			t.Fatalf("slotTag(%d) = %q, want a non-empty tag without braces", slot, tag)
		}
		if got := crc16(tag) % 16384; got != slot {
			t.Fatalf("slotTag(%d) = %q, which hashes to slot %d", slot, tag, got)
		}
	}
}

func TestGuardMarkerSlot(t *testing.T) {
	keys := []string{"lock", "orders:42", "{user1}:lock", "a}b", "}{", "a{}b", "{", "x{y}z", "日本", "\x00\xff{"}
	for _, key := range keys {
		marker := guardMarker(key)
		if !strings.HasPrefix(marker, guardMarkerPrefix+"{") {
			t.Errorf("guardMarker(%q) = %q, want the prefix %q", key, marker, guardMarkerPrefix+"{")
		}
		if got, want := keySlot(marker), keySlot(key); got != want {
			t.Errorf("keySlot(guardMarker(%q)) = %d, want %d (the key's slot)", key, got, want)
		}
	}
}
