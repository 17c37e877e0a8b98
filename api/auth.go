package api

import (
	"context"
	"fmt"
	"net"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Identity is the caller of a request, taken from the kernel (SO_PEERCRED)
// when the connection was accepted; it cannot be forged by the client.
type Identity struct {
	UID, GID, PID int
	// User is the caller's login name ("" when the uid has no name).
	User string
	// Admin callers may do everything; Login callers may run login flows for
	// any user. Every identified caller may manage its own user (self).
	Admin, Login bool
}

// Roles lists the identity's roles for display.
func (id *Identity) Roles() []string {
	var r []string
	if id.Admin {
		r = append(r, "admin")
	}
	if id.Login {
		r = append(r, "login")
	}
	if id.User != "" {
		r = append(r, "self")
	}
	return r
}

// mayManage reports whether id may manage user's enrollment.
func (id *Identity) mayManage(user string) bool {
	return id.Admin || id.User != "" && id.User == user
}

type identityKey struct{}

// peerCred reads the peer's credentials of a Unix-socket connection.
func peerCred(c net.Conn) (*unix.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("connection is %T, not a unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, credErr
}

// accountInfo is what the authorizer needs to know of a uid.
type accountInfo struct {
	name string
	gids []int
}

// Authorizer maps peer credentials to roles: root and the daemon's own uid
// (which can read the database anyway) are admin and login; members of the
// admin groups are admin and login; members of the login groups are login.
// Group membership includes supplementary groups from the system's group
// database, cached for a minute. It is safe for concurrent use; SetGroups
// may be called at any time (config reload).
type Authorizer struct {
	daemonUID int
	groups    atomic.Pointer[groupSets]

	// lookup resolves a uid; nil means the system database (os/user).
	lookup func(uid int) (accountInfo, error)
	// Now is the clock for the cache; nil means time.Now.
	Now func() time.Time

	mu    sync.Mutex
	cache map[int]cachedAccount
}

type groupSets struct{ login, admin []int }

type cachedAccount struct {
	info    accountInfo
	err     error
	expires time.Time
}

// NewAuthorizer returns an Authorizer for a daemon running as daemonUID.
// Group names that do not exist on this system are returned as warnings and
// otherwise ignored.
func NewAuthorizer(daemonUID int, loginGroups, adminGroups []string) (*Authorizer, []string) {
	a := &Authorizer{daemonUID: daemonUID, cache: map[int]cachedAccount{}}
	return a, a.SetGroups(loginGroups, adminGroups)
}

// SetGroups replaces the login and admin groups, returning warnings for
// group names that do not exist.
func (a *Authorizer) SetGroups(loginGroups, adminGroups []string) (warnings []string) {
	resolve := func(names []string) []int {
		var gids []int
		for _, n := range names {
			g, err := user.LookupGroup(n)
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("group %q: %v", n, err))
				continue
			}
			if gid, err := strconv.Atoi(g.Gid); err == nil {
				gids = append(gids, gid)
			}
		}
		return gids
	}
	a.groups.Store(&groupSets{login: resolve(loginGroups), admin: resolve(adminGroups)})
	return warnings
}

func systemLookup(uid int) (accountInfo, error) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return accountInfo{}, err
	}
	info := accountInfo{name: u.Username}
	ids, err := u.GroupIds()
	if err != nil {
		return info, nil // the primary gid from SO_PEERCRED still counts
	}
	for _, s := range ids {
		if gid, err := strconv.Atoi(s); err == nil {
			info.gids = append(info.gids, gid)
		}
	}
	return info, nil
}

func (a *Authorizer) account(uid int) (accountInfo, error) {
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	a.mu.Lock()
	c, ok := a.cache[uid]
	a.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.info, c.err
	}
	lookup := a.lookup
	if lookup == nil {
		lookup = systemLookup
	}
	info, err := lookup(uid)
	a.mu.Lock()
	if len(a.cache) > 4096 {
		clear(a.cache)
	}
	a.cache[uid] = cachedAccount{info: info, err: err, expires: now.Add(time.Minute)}
	a.mu.Unlock()
	return info, err
}

// Identify builds the identity of a peer.
func (a *Authorizer) Identify(uid, gid, pid int) *Identity {
	id := &Identity{UID: uid, GID: gid, PID: pid}
	info, err := a.account(uid)
	if err == nil {
		id.User = info.name
	}
	if uid == 0 || uid == a.daemonUID {
		id.Admin, id.Login = true, true
		return id
	}
	gids := append([]int{gid}, info.gids...)
	g := a.groups.Load()
	in := func(set []int) bool {
		return slices.ContainsFunc(gids, func(x int) bool { return slices.Contains(set, x) })
	}
	id.Admin = in(g.admin)
	id.Login = id.Admin || in(g.login)
	return id
}

// connContext attaches the peer's identity to every request of a connection.
func (a *Authorizer) connContext(ctx context.Context, c net.Conn) context.Context {
	cred, err := peerCred(c)
	if err != nil {
		return context.WithValue(ctx, identityKey{}, (*Identity)(nil))
	}
	return context.WithValue(ctx, identityKey{}, a.Identify(int(cred.Uid), int(cred.Gid), int(cred.Pid)))
}

func identityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}
