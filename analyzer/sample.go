package analyzer

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// normalizeSample turns the first encoded octets of a part into the form both
// constructors agree on: bare LF line ends become CRLF (IMAP servers send
// CRLF; files on disk often have LF), cut at SampleSize.
func normalizeSample(b []byte) []byte {
	out := make([]byte, 0, min(len(b)+len(b)/32, SampleSize))
	for i := 0; i < len(b) && len(out) < SampleSize; i++ {
		if b[i] == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
			if len(out) == SampleSize {
				break
			}
		}
		out = append(out, b[i])
	}
	return out
}

// decodeSample decodes the transfer encoding of a normalized sample and, for
// text parts, its charset to UTF-8. A sample cut in the middle of an encoded
// unit loses that unit only.
func decodeSample(p *Part, kind sampleKind, encoded []byte) []byte {
	var raw []byte
	switch p.Encoding {
	case "base64":
		raw = decodeBase64Prefix(encoded)
	case "quoted-printable":
		raw = decodeQPPrefix(encoded)
	default:
		raw = encoded
	}
	if kind != sampleText {
		return raw
	}
	return []byte(decodeCharset(p.Params["charset"], raw))
}

// decodeBase64Prefix decodes the complete base64 quanta of b, ignoring
// characters outside the alphabet (line ends), stopping at padding.
func decodeBase64Prefix(b []byte) []byte {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '=':
			// Padding ends the data; keep it so the last quantum decodes.
			clean = append(clean, c)
			for len(clean)%4 != 0 {
				clean = append(clean, '=')
			}
			out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
			n, _ := base64.StdEncoding.Decode(out, clean)
			return out[:n]
		}
	}
	clean = clean[:len(clean)-len(clean)%4]
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, _ := base64.StdEncoding.Decode(out, clean)
	return out[:n]
}

// decodeQPPrefix decodes quoted-printable leniently (RFC 2045 section 6.7):
// soft line breaks are removed, =XX escapes decoded, anything else kept.
func decodeQPPrefix(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		rest := b[i+1:]
		switch {
		case len(rest) >= 2 && rest[0] == '\r' && rest[1] == '\n':
			i += 2
		case len(rest) >= 1 && rest[0] == '\n':
			i++
		case len(rest) >= 2 && isHex(rest[0]) && isHex(rest[1]):
			out = append(out, unhex(rest[0])<<4|unhex(rest[1]))
			i += 2
		case len(rest) < 2:
			// Cut in the middle of an escape: drop it.
			return out
		default:
			out = append(out, c)
		}
	}
	return out
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// decodeCharset converts text to UTF-8. It knows UTF-8, US-ASCII, UTF-16 and
// the ISO-8859-1 / Windows-1252 family; other charsets are kept as they are,
// which leaves their ASCII (all that the detection rules look for) readable.
// Bytes that are not valid UTF-8 become U+FFFD.
func decodeCharset(charset string, b []byte) string {
	switch strings.ToLower(strings.Trim(charset, "\" ")) {
	case "iso-8859-1", "latin1", "iso_8859-1", "windows-1252", "cp1252", "iso-8859-15":
		var sb strings.Builder
		sb.Grow(len(b))
		for _, c := range b {
			sb.WriteRune(rune(c))
		}
		return sb.String()
	case "utf-16", "utf-16le", "utf-16be":
		return decodeUTF16(strings.ToLower(charset), b)
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func decodeUTF16(charset string, b []byte) string {
	bigEndian := charset == "utf-16be"
	if len(b) >= 2 {
		switch {
		case b[0] == 0xFE && b[1] == 0xFF:
			bigEndian, b = true, b[2:]
		case b[0] == 0xFF && b[1] == 0xFE:
			bigEndian, b = false, b[2:]
		}
	}
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		if bigEndian {
			u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
		} else {
			u = append(u, uint16(b[i+1])<<8|uint16(b[i]))
		}
	}
	return string(utf16.Decode(u))
}

// charsetReader lets mime.WordDecoder decode RFC 2047 words in the charsets
// decodeCharset knows.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(io.LimitReader(input, 1<<16))
	if err != nil {
		return nil, err
	}
	return bytes.NewReader([]byte(decodeCharset(charset, b))), nil
}
