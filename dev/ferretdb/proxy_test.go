package main

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// bsonDoc builds a BSON document with a single int32 field.
func bsonDoc(key string) []byte {
	body := append([]byte{0x10}, key...)
	body = append(body, 0, 1, 0, 0, 0)
	doc := binary.LittleEndian.AppendUint32(nil, uint32(4+len(body)+1))
	doc = append(doc, body...)

	return append(doc, 0)
}

// buildOpMsg builds an OP_MSG with the given flags and sections (each already prefixed by kind).
func buildOpMsg(flags uint32, sections ...[]byte) []byte {
	payload := binary.LittleEndian.AppendUint32(nil, flags)
	for _, s := range sections {
		payload = append(payload, s...)
	}

	msg := binary.LittleEndian.AppendUint32(nil, uint32(16+len(payload)))
	msg = binary.LittleEndian.AppendUint32(msg, 1)
	msg = binary.LittleEndian.AppendUint32(msg, 0)
	msg = binary.LittleEndian.AppendUint32(msg, opMsg)

	return append(msg, payload...)
}

func TestMsgCommand(t *testing.T) {
	body := append([]byte{0}, bsonDoc("update")...)

	// kind 1: int32 size (including itself), cstring identifier, documents
	seq := append([]byte("updates\x00"), bsonDoc("q")...)
	seq = append(binary.LittleEndian.AppendUint32(nil, uint32(4+len(seq))), seq...)
	seq = append([]byte{1}, seq...)

	for name, msg := range map[string][]byte{
		"body only":          buildOpMsg(0, body),
		"sequence then body": buildOpMsg(0, seq, body),
		"body then sequence": buildOpMsg(0, body, seq),
	} {
		if got := msgCommand(msg); got != "update" {
			t.Errorf("%s: msgCommand = %q, want %q", name, got, "update")
		}
	}

	for name, msg := range map[string][]byte{
		"no sections": buildOpMsg(0),
		"truncated":   buildOpMsg(0, body)[:25],
	} {
		if got := msgCommand(msg); got != "" {
			t.Errorf("%s: msgCommand = %q, want empty", name, got)
		}
	}
}

func TestReadMessage(t *testing.T) {
	msg := buildOpMsg(msgFlagMoreToCome, append([]byte{0}, bsonDoc("insert")...))

	got, err := readMessage(bytes.NewReader(append(msg, 0xff)))
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("readMessage = %v, %v", got, err)
	}

	if opCode(got) != opMsg || msgFlags(got)&msgFlagMoreToCome == 0 {
		t.Errorf("opCode = %d, flags = %b", opCode(got), msgFlags(got))
	}

	bad := binary.LittleEndian.AppendUint32(nil, 8)
	bad = append(bad, make([]byte, 12)...)

	if _, err = readMessage(bytes.NewReader(bad)); err == nil {
		t.Error("readMessage accepted a length shorter than the header")
	}
}
