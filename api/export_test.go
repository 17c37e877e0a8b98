package api

// NewTestAuthorizer builds an Authorizer with fixed group ids and a fake
// account lookup, for tests of the role mapping.
func NewTestAuthorizer(daemonUID int, loginGIDs, adminGIDs []int, lookup func(uid int) (string, []int, error)) *Authorizer {
	a := &Authorizer{daemonUID: daemonUID, cache: map[int]cachedAccount{}}
	a.groups.Store(&groupSets{login: loginGIDs, admin: adminGIDs})
	a.lookup = func(uid int) (accountInfo, error) {
		name, gids, err := lookup(uid)
		return accountInfo{name: name, gids: gids}, err
	}
	return a
}
