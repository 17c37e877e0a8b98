package sim

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/warthog618/sms"
	"github.com/warthog618/sms/encoding/gsm7"
	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"

	// The sms module's character tables must be built before any
	// goroutine encodes or decodes (a data race in sms v0.3.0).
	_ "github.com/mfad/mfad/internal/gsmtables"
)

// promptByte handles one byte between the "> " prompt of +CMGS and Ctrl-Z.
func (d *modemDevice) promptByte(c byte) {
	p := d.prompt
	switch c {
	case chESC:
		d.prompt = nil
		d.reply(0, "", resultOK)
		return
	case chSUB:
		d.prompt = nil
		d.finishSend(p)
		return
	case chBS:
		if n := len(p.buf); n > 0 {
			p.buf = p.buf[:n-1]
		}
		if d.set.echo {
			d.emit(0, string(c))
		}
		return
	case chCR:
		if p.pdu {
			return
		}
		// Text mode: a new line in the message, and a new prompt
		// (TS 27.005 §3.5.1).
		d.promptAppend('\n')
		d.emit(0, "\r\n> ")
		return
	case chLF:
		if p.pdu || (len(p.buf) > 0 && p.buf[len(p.buf)-1] == '\n') {
			return
		}
		d.promptAppend('\n')
		return
	}
	if d.set.echo {
		d.emit(0, string(c))
	}
	d.promptAppend(c)
}

func (d *modemDevice) promptAppend(c byte) {
	p := d.prompt
	if len(p.buf) >= maxSMSInput {
		p.overflow = true
		return
	}
	p.buf = append(p.buf, c)
}

// finishSend answers a message ended by Ctrl-Z: it checks the message, the
// SIM, the network and the injected faults, then records the message and
// answers +CMGS: <mr>.
func (d *modemDevice) finishSend(p *prompt) {
	var (
		part     *tpdu.TPDU
		text     *SMS
		srr      bool
		ra       tpdu.Address
		badParam = cmsResult(cmsBadPDUParam)
	)
	if !p.pdu {
		badParam = cmsResult(cmsBadTextParam)
	}
	switch {
	case p.overflow:
		d.reply(0, "", badParam)
		return
	case p.pdu:
		t, err := decodeSubmit(p.buf, p.length)
		if err != nil {
			d.log.Debug("rejecting sms pdu", "err", err)
			d.reply(0, "", badParam)
			return
		}
		part, srr, ra = t, t.FirstOctet.SRR(), t.DA
	default:
		s, err := d.textMessage(p)
		if err != nil {
			d.log.Debug("rejecting sms text", "err", err)
			d.reply(0, "", badParam)
			return
		}
		text, srr = s, d.set.csmp[0]&tpdu.FoSRR != 0
		ra = tpdu.Address{TOA: byte(p.toda), Addr: strings.TrimPrefix(p.da, "+")}
	}
	if r, bad := d.simErr(true); bad {
		d.reply(0, "", r)
		return
	}
	if !isRegistered(d.effectiveStat()) {
		d.reply(0, "", cmsResult(cmsNoService))
		return
	}
	if d.failN != 0 {
		if d.failN > 0 {
			d.failN--
		}
		d.reply(d.opts.SendDelay, "", cmsResult(d.failCMS))
		return
	}

	d.mr++
	d.sends++
	mr := d.mr
	if part != nil {
		text = d.collect(part, int(mr))
	} else {
		text.Ref = int(mr)
	}
	if text != nil {
		text.Time = d.opts.Now()
		d.deliver(*text)
	}
	if srr && d.opts.DeliveryReports && d.set.cnmi[3] == 1 {
		if urc, err := d.statusReport(mr, ra); err == nil {
			d.queueURC(urc)
		} else {
			d.log.Warn("building sms status report", "err", err)
		}
	}
	d.reply(d.opts.SendDelay, d.infoText([]string{fmt.Sprintf("+CMGS: %d", mr)}), resultOK)
}

// decodeSubmit decodes a PDU mode message: the SMSC address followed by an
// SMS-SUBMIT TPDU of the declared length, in hexadecimal.
func decodeSubmit(hexPDU []byte, declared int) (*tpdu.TPDU, error) {
	raw := make([]byte, hex.DecodedLen(len(hexPDU)))
	if _, err := hex.Decode(raw, hexPDU); err != nil {
		return nil, fmt.Errorf("decoding hex: %w", err)
	}
	var pdu pdumode.PDU
	if err := pdu.UnmarshalBinary(raw); err != nil {
		return nil, fmt.Errorf("decoding smsc address: %w", err)
	}
	if len(pdu.TPDU) != declared {
		return nil, fmt.Errorf("tpdu is %d octets, +CMGS declared %d", len(pdu.TPDU), declared)
	}
	t, err := sms.Unmarshal(pdu.TPDU, sms.AsMO)
	if err != nil {
		return nil, fmt.Errorf("decoding tpdu: %w", err)
	}
	if st := t.SmsType(); st != tpdu.SmsSubmit {
		return nil, fmt.Errorf("tpdu is %v, not SMS-SUBMIT", st)
	}
	if t.DA.Addr == "" {
		return nil, errors.New("no destination address")
	}
	if _, err := t.Alphabet(); err != nil {
		return nil, fmt.Errorf("decoding dcs: %w", err)
	}
	return t, nil
}

// concatKey identifies the parts of one concatenated message.
type concatKey struct {
	to         string
	ref, total int
	wide       bool // 16-bit reference (IEI 0x08)
}

// smsPartial is a concatenated message being reassembled.
type smsPartial struct {
	parts []*tpdu.TPDU // by sequence number - 1
	got   int
}

// collect adds a sent TPDU to its message and returns the message once it
// is complete. A TPDU whose concatenation header is missing or inconsistent
// is a message of its own. A part sent again replaces the earlier copy.
func (d *modemDevice) collect(t *tpdu.TPDU, mr int) *SMS {
	total, seq, ref, concat := t.ConcatInfo()
	if !concat || total < 2 || seq < 1 || seq > total {
		return newSMS([]*tpdu.TPDU{t}, mr)
	}
	_, _, _, narrow := t.UDH.ConcatInfo8()
	key := concatKey{to: t.DA.Number(), ref: ref, total: total, wide: !narrow}
	p, found := d.partials[key]
	if !found {
		if len(d.order) >= maxPartials {
			delete(d.partials, d.order[0])
			d.order = d.order[1:]
		}
		p = &smsPartial{parts: make([]*tpdu.TPDU, total)}
		d.partials[key] = p
		d.order = append(d.order, key)
	}
	if p.parts[seq-1] == nil {
		p.got++
	}
	p.parts[seq-1] = t
	if p.got < total {
		return nil
	}
	delete(d.partials, key)
	d.order = slices.DeleteFunc(d.order, func(k concatKey) bool { return k == key })
	return newSMS(p.parts, mr)
}

// newSMS builds the record of a complete message from its parts in order.
func newSMS(parts []*tpdu.TPDU, mr int) *SMS {
	alpha, _ := parts[0].Alphabet()
	return &SMS{
		To:       parts[0].DA.Number(),
		Text:     decodeParts(parts),
		Parts:    len(parts),
		Encoding: encodingName(alpha),
		Mode:     "pdu",
		Ref:      mr,
	}
}

func encodingName(a tpdu.Alphabet) string {
	switch a {
	case tpdu.AlphaUCS2:
		return "ucs2"
	case tpdu.Alpha8Bit:
		return "8bit"
	}
	return "gsm7"
}

// decodeParts returns the text of a message the way a phone shows it:
// undecodable characters become U+FFFD rather than failing, since the
// network delivers whatever it was sent. UCS-2 is decoded across part
// boundaries, so a surrogate pair split between parts survives.
func decodeParts(parts []*tpdu.TPDU) string {
	var b strings.Builder
	var units []uint16
	flush := func() {
		b.WriteString(string(utf16.Decode(units)))
		units = units[:0]
	}
	for _, t := range parts {
		alpha, _ := t.Alphabet()
		if alpha == tpdu.AlphaUCS2 {
			for i := 0; i+1 < len(t.UD); i += 2 {
				units = append(units, uint16(t.UD[i])<<8|uint16(t.UD[i+1]))
			}
			continue
		}
		flush()
		if alpha == tpdu.Alpha8Bit {
			b.WriteString(strings.ToValidUTF8(string(t.UD), "\uFFFD"))
			continue
		}
		text, err := tpdu.DecodeUserData(t.UD, t.UDH, alpha, tpdu.WithAllCharsets)
		if err != nil {
			b.WriteString("\uFFFD")
			continue
		}
		b.Write(text)
	}
	flush()
	return b.String()
}

// textMessage decodes a text mode message (TS 27.005 §3.5.1): with a GSM
// 7-bit <dcs> (+CSMP) the text is in the +CSCS character set; with 8-bit or
// UCS2 data coding it is entered as hexadecimal octets. It must fit in one
// message.
func (d *modemDevice) textMessage(p *prompt) (*SMS, error) {
	alpha, err := tpdu.DCS(d.set.csmp[3]).Alphabet()
	if err != nil {
		return nil, fmt.Errorf("decoding +CSMP dcs: %w", err)
	}
	s := &SMS{To: p.da, Parts: 1, Encoding: encodingName(alpha), Mode: "text"}
	if !strings.HasPrefix(s.To, "+") && p.toda == 145 {
		s.To = "+" + s.To
	}
	switch alpha {
	case tpdu.Alpha7Bit:
		in := string(p.buf)
		if d.set.cscs == "UCS2" {
			// Line breaks are entered as 000A; a CR typed between the
			// hex digits is not part of the text.
			in = strings.ReplaceAll(in, "\n", "")
		}
		text, valid := d.decodeString(in)
		if !valid {
			return nil, fmt.Errorf("text not in %s character set", d.set.cscs)
		}
		septets, err := gsm7.Encode([]byte(text))
		if err != nil {
			return nil, errors.New("text not in the gsm default alphabet")
		}
		if len(septets) > 160 {
			return nil, fmt.Errorf("text of %d septets does not fit in one message", len(septets))
		}
		s.Text = text
	default:
		raw, err := hex.DecodeString(strings.ReplaceAll(string(p.buf), "\n", ""))
		if err != nil {
			return nil, fmt.Errorf("decoding hex text: %w", err)
		}
		if len(raw) > tpdu.MaxUDL {
			return nil, fmt.Errorf("text of %d octets does not fit in one message", len(raw))
		}
		if alpha == tpdu.AlphaUCS2 {
			if len(raw)%2 != 0 {
				return nil, errors.New("odd ucs2 length")
			}
			s.Text = decodeParts([]*tpdu.TPDU{{DCS: tpdu.DcsUCS2Data, UD: raw}})
		} else {
			s.Text = strings.ToValidUTF8(string(raw), "\uFFFD")
		}
	}
	return s, nil
}

// statusReport returns the +CDS URC reporting message mr to ra delivered:
// in PDU mode the SMSC address and an SMS-STATUS-REPORT TPDU in hex, in text
// mode its fields (TS 27.005 §3.4.1).
func (d *modemDevice) statusReport(mr byte, ra tpdu.Address) (string, error) {
	now := d.opts.Now()
	if d.set.cmgf == 1 {
		num := ra.Addr
		if ra.TypeOfNumber() == tpdu.TonInternational {
			num = "+" + num
		}
		return fmt.Sprintf("+CDS: 6,%d,\"%s\",%d,%q,%q,0",
			mr, d.encodeString(num), ra.TOA, smsTimestamp(now), smsTimestamp(now)), nil
	}
	t := tpdu.TPDU{
		Direction:  tpdu.MT,
		FirstOctet: 0x06, // SMS-STATUS-REPORT, no more messages
		MR:         mr,
		RA:         ra,
		SCTS:       tpdu.Timestamp{Time: now},
		DT:         tpdu.Timestamp{Time: now},
		ST:         0, // received by the recipient
	}
	tp, err := t.MarshalBinary()
	if err != nil {
		return "", err
	}
	sca := pdumode.SMSCAddress{Address: tpdu.Address{TOA: byte(d.scaType), Addr: strings.TrimPrefix(d.sca, "+")}}
	pdu := pdumode.PDU{SMSC: sca, TPDU: tp}
	s, err := pdu.MarshalHexString()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("+CDS: %d\r\n%s", len(tp), strings.ToUpper(s)), nil
}

// ---- character sets ----

// utf16Units returns s as UTF-16 code units.
func utf16Units(s string) []uint16 { return utf16.Encode([]rune(s)) }

// decodeUCS2Hex decodes +CSCS="UCS2" text: four hex digits per UTF-16 unit.
func decodeUCS2Hex(s string) (string, bool) {
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw)%2 != 0 {
		return "", false
	}
	units := make([]uint16, len(raw)/2)
	for i := range units {
		units[i] = uint16(raw[2*i])<<8 | uint16(raw[2*i+1])
	}
	return string(utf16.Decode(units)), true
}

// decodeGSMText decodes +CSCS="GSM" text: one GSM 7-bit default alphabet
// code per byte, 0x1B introducing the extension table.
func decodeGSMText(b []byte) (string, bool) {
	for _, c := range b {
		if c > 0x7f {
			return "", false
		}
	}
	text, err := gsm7.Decode(b)
	if err != nil {
		return "", false
	}
	return string(text), true
}

// decodeIRA decodes +CSCS="IRA" (ITU-T T.50, that is ASCII) text.
func decodeIRA(b []byte) (string, bool) {
	for _, c := range b {
		if c > 0x7f {
			return "", false
		}
	}
	return string(b), true
}

// decodeLatin1 decodes +CSCS="8859-1" text.
func decodeLatin1(b []byte) string {
	r := make([]byte, 0, len(b))
	for _, c := range b {
		r = utf8.AppendRune(r, rune(c))
	}
	return string(r)
}
