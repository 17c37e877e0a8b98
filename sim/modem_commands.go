package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// atHandler executes one extended command and returns its information lines
// and final result.
type atHandler func(d *modemDevice, c atCommand) ([]string, atResult)

// atCommands maps extended command names to their handlers. Commands not
// listed answer ERROR, as a real modem answers commands it does not know.
var atCommands map[string]atHandler

func init() {
	atCommands = map[string]atHandler{
		"+GCAP":  fixedAnswer("+GCAP: +CGSM,+DS,+ES"),
		"+CGMI":  identAnswer(func(d *modemDevice) string { return d.opts.Manufacturer }),
		"+GMI":   identAnswer(func(d *modemDevice) string { return d.opts.Manufacturer }),
		"+CGMM":  identAnswer(func(d *modemDevice) string { return d.opts.Model }),
		"+GMM":   identAnswer(func(d *modemDevice) string { return d.opts.Model }),
		"+CGMR":  identAnswer(func(d *modemDevice) string { return d.opts.Revision }),
		"+GMR":   identAnswer(func(d *modemDevice) string { return d.opts.Revision }),
		"+CGSN":  identAnswer(func(d *modemDevice) string { return d.opts.IMEI }),
		"+GSN":   identAnswer(func(d *modemDevice) string { return d.opts.IMEI }),
		"+CIMI":  (*modemDevice).cimi,
		"+CMEE":  intSetting(func(d *modemDevice) *int { return &d.set.cmee }, 0, 2, "+CMEE: (0-2)"),
		"+CFUN":  (*modemDevice).cfunCmd,
		"+CPIN":  (*modemDevice).cpin,
		"+CREG":  registrationCmd("+CREG", func(d *modemDevice) *int { return &d.set.creg }, 2),
		"+CGREG": registrationCmd("+CGREG", func(d *modemDevice) *int { return &d.set.cgreg }, 2),
		"+CEREG": registrationCmd("+CEREG", func(d *modemDevice) *int { return &d.set.cereg }, 5),
		"+CSQ":   (*modemDevice).csq,
		"+COPS":  (*modemDevice).cops,
		"+CPAS": func(_ *modemDevice, c atCommand) ([]string, atResult) {
			switch c.kind {
			case cmdExec:
				return []string{"+CPAS: 0"}, resultOK
			case cmdTest:
				return []string{"+CPAS: (0-5)"}, resultOK
			}
			return nil, resultError
		},
		"+CPBS": (*modemDevice).cpbs,
		"+CHUP": func(_ *modemDevice, c atCommand) ([]string, atResult) {
			if c.kind == cmdExec || c.kind == cmdTest {
				return nil, resultOK // no call to hang up
			}
			return nil, resultError
		},
		"+CBC": func(_ *modemDevice, c atCommand) ([]string, atResult) {
			switch c.kind {
			case cmdExec:
				return []string{"+CBC: 0,100"}, resultOK
			case cmdTest:
				return []string{"+CBC: (0-3),(0-100)"}, resultOK
			}
			return nil, resultError
		},
		"+CUSD": (*modemDevice).cusd,
		"+CCLK": (*modemDevice).cclk,
		"+CNUM": (*modemDevice).cnum,
		"+CGATT": func(d *modemDevice, c atCommand) ([]string, atResult) {
			switch c.kind {
			case cmdRead:
				att := 0
				if isRegistered(d.effectiveStat()) {
					att = 1
				}
				return []string{fmt.Sprintf("+CGATT: %d", att)}, resultOK
			case cmdTest:
				return []string{"+CGATT: (0,1)"}, resultOK
			case cmdSet:
				if _, valid := atOneInt(c.args, 0, 1); valid {
					return nil, resultOK
				}
			}
			return nil, resultError
		},

		"+CMGF": intSetting(func(d *modemDevice) *int { return &d.set.cmgf }, 0, 1, "+CMGF: (0,1)"),
		"+CSCS": (*modemDevice).cscs,
		"+CSCA": (*modemDevice).csca,
		"+CSMP": (*modemDevice).csmp,
		"+CNMI": (*modemDevice).cnmi,
		"+CSDH": intSetting(func(d *modemDevice) *int { return &d.set.csdh }, 0, 1, "+CSDH: (0,1)"),
		"+CMMS": intSetting(func(d *modemDevice) *int { return &d.set.cmms }, 0, 2, "+CMMS: (0-2)"),
		"+CSMS": (*modemDevice).csms,
		"+CPMS": (*modemDevice).cpms,
		"+CMGL": (*modemDevice).cmgl,
		"+CMGR": (*modemDevice).cmgr,
		"+CMGD": (*modemDevice).cmgd,
		"+CNMA": func(d *modemDevice, c atCommand) ([]string, atResult) {
			if c.kind == cmdTest {
				return nil, resultOK
			}
			return nil, cmsResult(cmsNoAckExpected)
		},
		"+CMGS": (*modemDevice).cmgs,
	}
}

// fixedAnswer answers the execute and read forms with one fixed line.
func fixedAnswer(line string) atHandler {
	return func(_ *modemDevice, c atCommand) ([]string, atResult) {
		switch c.kind {
		case cmdExec, cmdRead:
			return []string{line}, resultOK
		case cmdTest:
			return nil, resultOK
		}
		return nil, resultError
	}
}

// identAnswer answers an identification command (+CGMI and friends) with the
// bare value, as most modems do.
func identAnswer(value func(*modemDevice) string) atHandler {
	return func(d *modemDevice, c atCommand) ([]string, atResult) {
		switch c.kind {
		case cmdExec:
			return []string{value(d)}, resultOK
		case cmdTest:
			return nil, resultOK
		}
		return nil, resultError
	}
}

// atOneInt parses a parameter list holding one integer in [lo, hi].
func atOneInt(s string, lo, hi int) (int, bool) {
	args, valid := splitATArgs(s)
	if !valid || len(args) != 1 {
		return 0, false
	}
	return atInt(args[0], lo, hi)
}

// intSetting handles a command whose only parameter is a stored integer:
// =n sets it, ? reads it as "+NAME: n", =? answers test.
func intSetting(field func(*modemDevice) *int, lo, hi int, test string) atHandler {
	name, _, _ := strings.Cut(test, ":")
	return func(d *modemDevice, c atCommand) ([]string, atResult) {
		switch c.kind {
		case cmdSet:
			n, valid := atOneInt(c.args, lo, hi)
			if !valid {
				return nil, resultError
			}
			*field(d) = n
			return nil, resultOK
		case cmdRead:
			return []string{fmt.Sprintf("%s: %d", name, *field(d))}, resultOK
		case cmdTest:
			return []string{test}, resultOK
		}
		return nil, resultError
	}
}

// registrationCmd handles +CREG, +CGREG and +CEREG: =n sets the URC mode,
// ? reads "<n>,<stat>" with the location when n >= 2 and registered.
func registrationCmd(name string, field func(*modemDevice) *int, maxN int) atHandler {
	set := intSetting(field, 0, maxN, fmt.Sprintf("%s: (0-%d)", name, maxN))
	return func(d *modemDevice, c atCommand) ([]string, atResult) {
		if c.kind != cmdRead {
			return set(d, c)
		}
		n, stat := *field(d), d.effectiveStat()
		if n >= 2 && isRegistered(stat) {
			return []string{fmt.Sprintf("%s: %d,%d,%q,%q,7", name, n, stat, simLAC, simCellID)}, resultOK
		}
		return []string{fmt.Sprintf("%s: %d,%d", name, n, stat)}, resultOK
	}
}

func (d *modemDevice) cimi(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdExec:
		if r, bad := d.simErr(false); bad {
			return nil, r
		}
		return []string{d.opts.IMSI}, resultOK
	case cmdTest:
		return nil, resultOK
	}
	return nil, resultError
}

func (d *modemDevice) cfunCmd(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdRead:
		return []string{fmt.Sprintf("+CFUN: %d", d.cfun)}, resultOK
	case cmdTest:
		return []string{"+CFUN: (0,1,4),(0,1)"}, resultOK
	case cmdSet:
		v := []int{-1, 0}
		if !atInts(c.args, v, []int{0, 0}, []int{4, 1}) || v[0] == 2 || v[0] == 3 || v[0] < 0 {
			return nil, resultError
		}
		if v[1] == 1 {
			// A reset: settings back to defaults and the SIM locked again.
			d.set = defaultSettings()
			d.lockSIM(d.pin)
		}
		d.cfun = v[0]
		d.statChanged()
		return nil, resultOK
	}
	return nil, resultError
}

func (d *modemDevice) cpin(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdTest:
		return nil, resultOK
	case cmdRead:
		switch d.sim {
		case simReady:
			return []string{"+CPIN: READY"}, resultOK
		case simPIN:
			return []string{"+CPIN: SIM PIN"}, resultOK
		case simPUK:
			return []string{"+CPIN: SIM PUK"}, resultOK
		}
		return nil, cmeResult(cmeSIMFailure)
	case cmdSet:
	default:
		return nil, resultError
	}
	args, valid := splitATArgs(c.args)
	if !valid || len(args) > 2 {
		return nil, resultError
	}
	switch d.sim {
	case simReady:
		return nil, cmeResult(cmeNotAllowed)
	case simBlocked:
		return nil, cmeResult(cmeSIMFailure)
	case simPIN:
		if len(args) != 1 {
			return nil, resultError
		}
		if args[0].s != d.pin {
			d.pinTries--
			if d.pinTries <= 0 {
				d.sim = simPUK
			}
			return nil, cmeResult(cmeBadPassword)
		}
	case simPUK:
		if len(args) != 2 {
			return nil, cmeResult(cmeSIMPUK)
		}
		newPIN := args[1].s
		if args[0].s != d.opts.PUK || len(newPIN) < 4 || len(newPIN) > 8 || strings.Trim(newPIN, "0123456789") != "" {
			d.pukTries--
			if d.pukTries <= 0 {
				d.sim = simBlocked
			}
			return nil, cmeResult(cmeBadPassword)
		}
		d.pin = newPIN
	}
	d.sim = simReady
	d.pinTries, d.pukTries = pinAttempts, pukAttempts
	d.statChanged()
	return nil, resultOK
}

func (d *modemDevice) csq(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdExec:
		return []string{fmt.Sprintf("+CSQ: %d,99", d.rssi)}, resultOK
	case cmdTest:
		return []string{"+CSQ: (0-31,99),(0-7,99)"}, resultOK
	}
	return nil, resultError
}

func (d *modemDevice) cops(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdRead:
		if !isRegistered(d.effectiveStat()) {
			return []string{"+COPS: 0"}, resultOK
		}
		name := d.encodeString(d.opts.Operator)
		if d.set.copsFmt == 2 {
			name = simPLMN
		}
		return []string{fmt.Sprintf("+COPS: 0,%d,\"%s\",7", d.set.copsFmt, name)}, resultOK
	case cmdTest:
		if d.sim != simReady {
			return nil, cmeResult(cmeSIMPIN)
		}
		op := d.encodeString(d.opts.Operator)
		return []string{fmt.Sprintf("+COPS: (2,\"%s\",\"%s\",\"%s\",7),,(0-4),(0-2)", op, op, simPLMN)}, resultOK
	case cmdSet:
		args, valid := splitATArgs(c.args)
		if !valid || len(args) > 4 {
			return nil, resultError
		}
		mode, valid := atInt(args[0], 0, 4)
		if !valid {
			return nil, resultError
		}
		if len(args) > 1 && !args[1].empty() {
			f, valid := atInt(args[1], 0, 2)
			if !valid {
				return nil, resultError
			}
			d.set.copsFmt = f
		}
		if mode == 1 || mode == 4 {
			// Manual selection succeeds only for our own operator.
			if len(args) < 3 || (args[2].s != d.opts.Operator && args[2].s != simPLMN) {
				return nil, cmeResult(cmeNotAllowed)
			}
		}
		return nil, resultOK
	}
	return nil, resultError
}

func (d *modemDevice) cclk(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdRead:
		return []string{fmt.Sprintf("+CCLK: %q", smsTimestamp(d.opts.Now()))}, resultOK
	case cmdTest:
		return nil, resultOK
	case cmdSet:
		// The simulated clock cannot be set; accept the request like a
		// modem whose clock is overwritten by the network.
		if args, valid := splitATArgs(c.args); valid && len(args) == 1 && args[0].quoted {
			return nil, resultOK
		}
	}
	return nil, resultError
}

// smsTimestamp formats t as a TS 27.005 time string: yy/MM/dd,hh:mm:ss±zz with
// the zone in quarter hours.
func smsTimestamp(t time.Time) string {
	_, off := t.Zone()
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	return fmt.Sprintf("%s%c%02d", t.Format("06/01/02,15:04:05"), sign, off/900)
}

// cpbs selects the phonebook storage; the simulated SIM's is empty.
func (d *modemDevice) cpbs(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdTest:
		return []string{`+CPBS: ("SM")`}, resultOK
	case cmdRead:
		if r, bad := d.simErr(false); bad {
			return nil, r
		}
		return []string{`+CPBS: "SM",0,250`}, resultOK
	case cmdSet:
		if r, bad := d.simErr(false); bad {
			return nil, r
		}
		if args, valid := splitATArgs(c.args); valid && len(args) == 1 && strings.EqualFold(args[0].s, "SM") {
			return nil, resultOK
		}
		return nil, cmeResult(cmeNotAllowed)
	}
	return nil, resultError
}

// cusd sets USSD result presentation; the simulated network offers no
// USSD service, so a USSD request fails.
func (d *modemDevice) cusd(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdRead:
		return []string{fmt.Sprintf("+CUSD: %d", d.set.cusd)}, resultOK
	case cmdTest:
		return []string{"+CUSD: (0-2)"}, resultOK
	case cmdSet:
		args, valid := splitATArgs(c.args)
		if !valid || len(args) > 3 {
			return nil, resultError
		}
		n := d.set.cusd
		if !args[0].empty() {
			if n, valid = atInt(args[0], 0, 2); !valid {
				return nil, resultError
			}
		}
		if len(args) > 1 {
			return nil, cmeResult(cmeNotSupported)
		}
		d.set.cusd = n
		return nil, resultOK
	}
	return nil, resultError
}

func (d *modemDevice) cnum(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdExec:
		if r, bad := d.simErr(false); bad {
			return nil, r
		}
		// The simulated SIM does not know its own number, like most.
		return nil, resultOK
	case cmdTest:
		return nil, resultOK
	}
	return nil, resultError
}

// modemCharsets are the +CSCS character sets the device supports.
var modemCharsets = []string{"GSM", "UCS2", "IRA", "8859-1"}

func (d *modemDevice) cscs(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdRead:
		return []string{fmt.Sprintf("+CSCS: %q", d.set.cscs)}, resultOK
	case cmdTest:
		return []string{`+CSCS: ("GSM","UCS2","IRA","8859-1")`}, resultOK
	case cmdSet:
		args, valid := splitATArgs(c.args)
		if !valid || len(args) != 1 || !args[0].quoted {
			return nil, resultError
		}
		for _, cs := range modemCharsets {
			if strings.EqualFold(args[0].s, cs) {
				d.set.cscs = cs
				return nil, resultOK
			}
		}
		return nil, cmeResult(cmeNotSupported)
	}
	return nil, resultError
}

func (d *modemDevice) csca(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdTest:
		return nil, resultOK
	case cmdRead:
		if r, bad := d.simErr(true); bad {
			return nil, r
		}
		return []string{fmt.Sprintf("+CSCA: \"%s\",%d", d.encodeString(d.sca), d.scaType)}, resultOK
	case cmdSet:
		if r, bad := d.simErr(true); bad {
			return nil, r
		}
		args, valid := splitATArgs(c.args)
		if !valid || len(args) > 2 || !args[0].quoted {
			return nil, resultError
		}
		sca, valid := d.decodeString(args[0].s)
		if !valid || !validSMSNumber(sca) {
			return nil, resultError
		}
		toa := 129
		if strings.HasPrefix(sca, "+") {
			toa = 145
		}
		if len(args) == 2 {
			if toa, valid = atInt(args[1], 128, 255); !valid {
				return nil, resultError
			}
		}
		d.sca, d.scaType = sca, toa
		return nil, resultOK
	}
	return nil, resultError
}

// validSMSNumber reports whether s is a dialable address: an optional + and
// 1 to 20 digits, *, # (TS 27.005 <da>).
func validSMSNumber(s string) bool {
	s = strings.TrimPrefix(s, "+")
	return s != "" && len(s) <= 20 && strings.Trim(s, "0123456789*#") == ""
}

func (d *modemDevice) csmp(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdRead:
		p := d.set.csmp
		return []string{fmt.Sprintf("+CSMP: %d,%d,%d,%d", p[0], p[1], p[2], p[3])}, resultOK
	case cmdTest:
		return nil, resultOK
	case cmdSet:
		args, valid := splitATArgs(c.args)
		if !valid || len(args) > 4 {
			return nil, resultError
		}
		p := d.set.csmp
		for i, a := range args {
			switch {
			case a.empty():
			case i == 1 && a.quoted:
				// An absolute or enhanced validity period: accepted and
				// not kept, the simulated network delivers at once.
			default:
				n, valid := atInt(a, 0, 255)
				if !valid {
					return nil, resultError
				}
				p[i] = n
			}
		}
		d.set.csmp = p
		return nil, resultOK
	}
	return nil, resultError
}

func (d *modemDevice) cnmi(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdRead:
		p := d.set.cnmi
		return []string{fmt.Sprintf("+CNMI: %d,%d,%d,%d,%d", p[0], p[1], p[2], p[3], p[4])}, resultOK
	case cmdTest:
		return []string{"+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)"}, resultOK
	case cmdSet:
		p := d.set.cnmi
		if !atInts(c.args, p[:], []int{0, 0, 0, 0, 0}, []int{3, 3, 3, 2, 1}) {
			return nil, resultError
		}
		d.set.cnmi = p
		return nil, resultOK
	}
	return nil, resultError
}

func (d *modemDevice) csms(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdRead:
		return []string{fmt.Sprintf("+CSMS: %d,1,1,1", d.set.csms)}, resultOK
	case cmdTest:
		return []string{"+CSMS: (0,1)"}, resultOK
	case cmdSet:
		n, valid := atOneInt(c.args, 0, 1)
		if !valid {
			return nil, resultError
		}
		d.set.csms = n
		return []string{"+CSMS: 1,1,1"}, resultOK
	}
	return nil, resultError
}

// smsStorages are the message storages +CPMS accepts; the simulated SIM and
// phone hold no messages.
var smsStorages = []string{"SM", "ME", "MT", "SR", "BM"}

// storageSize is the capacity +CPMS reports for every storage.
const storageSize = 30

func (d *modemDevice) cpms(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdTest:
		return []string{`+CPMS: ("SM","ME","MT"),("SM","ME","MT"),("SM","ME","MT")`}, resultOK
	case cmdRead:
		if r, bad := d.simErr(true); bad {
			return nil, r
		}
		m := d.set.cpms
		return []string{fmt.Sprintf("+CPMS: %q,0,%d,%q,0,%d,%q,0,%d",
			m[0], storageSize, m[1], storageSize, m[2], storageSize)}, resultOK
	case cmdSet:
		if r, bad := d.simErr(true); bad {
			return nil, r
		}
		args, valid := splitATArgs(c.args)
		if !valid || len(args) > 3 {
			return nil, resultError
		}
		m := d.set.cpms
		for i, a := range args {
			name := strings.ToUpper(a.s)
			if !a.quoted || !slices.Contains(smsStorages, name) {
				return nil, cmsResult(cmsNotAllowed)
			}
			m[i] = name
		}
		d.set.cpms = m
		var parts []string
		for range args {
			parts = append(parts, fmt.Sprintf("0,%d", storageSize))
		}
		return []string{"+CPMS: " + strings.Join(parts, ",")}, resultOK
	}
	return nil, resultError
}

// cmglStats are the text mode <stat> values of +CMGL.
var cmglStats = []string{"REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL"}

func (d *modemDevice) cmgl(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdTest:
		if d.set.cmgf == 0 {
			return []string{"+CMGL: (0-4)"}, resultOK
		}
		return []string{`+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")`}, resultOK
	case cmdExec, cmdSet:
	default:
		return nil, resultError
	}
	if r, bad := d.simErr(true); bad {
		return nil, r
	}
	if c.kind == cmdSet {
		args, valid := splitATArgs(c.args)
		if !valid || len(args) > 2 {
			return nil, resultError
		}
		if d.set.cmgf == 0 {
			if _, valid := atInt(args[0], 0, 4); !valid {
				return nil, cmsResult(cmsBadPDUParam)
			}
		} else if !args[0].quoted || !slices.Contains(cmglStats, strings.ToUpper(args[0].s)) {
			return nil, cmsResult(cmsBadTextParam)
		}
	}
	// Storage is empty: an empty list.
	return nil, resultOK
}

func (d *modemDevice) cmgr(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdTest:
		return nil, resultOK
	case cmdSet:
		if r, bad := d.simErr(true); bad {
			return nil, r
		}
		args, valid := splitATArgs(c.args)
		if !valid || len(args) > 2 {
			return nil, resultError
		}
		if _, valid := atInt(args[0], 0, 65535); !valid {
			return nil, resultError
		}
		return nil, cmsResult(cmsBadIndex)
	}
	return nil, resultError
}

func (d *modemDevice) cmgd(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdTest:
		return []string{fmt.Sprintf("+CMGD: (1-%d),(0-4)", storageSize)}, resultOK
	case cmdSet:
		if r, bad := d.simErr(true); bad {
			return nil, r
		}
		v := []int{-1, 0}
		if !atInts(c.args, v, []int{0, 0}, []int{65535, 4}) || v[0] < 0 {
			return nil, resultError
		}
		// Deleting from an empty storage succeeds, as on most modems.
		return nil, resultOK
	}
	return nil, resultError
}

// cmgs starts sending a message: it checks the parameters and opens the
// prompt; the message itself follows in promptByte.
func (d *modemDevice) cmgs(c atCommand) ([]string, atResult) {
	switch c.kind {
	case cmdTest:
		return nil, resultOK
	case cmdSet:
	default:
		return nil, resultError
	}
	if r, bad := d.simErr(true); bad {
		return nil, r
	}
	args, valid := splitATArgs(c.args)
	if d.set.cmgf == 0 {
		if !valid || len(args) != 1 {
			return nil, cmsResult(cmsBadPDUParam)
		}
		n, valid := atInt(args[0], minTPDULen, maxTPDULen)
		if !valid {
			return nil, cmsResult(cmsBadPDUParam)
		}
		d.prompt = &prompt{pdu: true, length: n}
		return nil, resultPrompt
	}
	if !valid || len(args) > 2 || !args[0].quoted {
		return nil, cmsResult(cmsBadTextParam)
	}
	da, valid := d.decodeString(args[0].s)
	if !valid || !validSMSNumber(da) {
		return nil, cmsResult(cmsBadTextParam)
	}
	toda := 129
	if strings.HasPrefix(da, "+") {
		toda = 145
	}
	if len(args) == 2 && !args[1].empty() {
		if toda, valid = atInt(args[1], 128, 255); !valid {
			return nil, cmsResult(cmsBadTextParam)
		}
	}
	d.prompt = &prompt{da: da, toda: toda}
	return nil, resultPrompt
}
