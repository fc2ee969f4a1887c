package kubeindex

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// The reverse map: every address of a published view (ClusterIPs and
// endpoints) points at the sorted list of its owners. A rebuild of one
// service replaces its part of the lists of exactly the addresses whose
// owners from that service changed; the lists themselves are immutable.

// reverse returns the owners of a; mu or wmu held.
func (x *index) reverse(a netip.Addr) *[]ReverseName {
	if a.Is4() {
		return x.rev4[a.As4()]
	}
	return x.rev6[a.As16()]
}

// setReverse stores (names non-nil) or removes the owners of a; mu and wmu
// held.
func (x *index) setReverse(a netip.Addr, names *[]ReverseName) {
	switch {
	case a.Is4() && names == nil:
		delete(x.rev4, a.As4())
	case a.Is4():
		x.rev4[a.As4()] = names
	case names == nil:
		delete(x.rev6, a.As16())
	default:
		x.rev6[a.As16()] = names
	}
}

type revItem struct {
	addr netip.Addr
	name ReverseName
}

type revChange struct {
	addr  netip.Addr
	names *[]ReverseName // nil: remove the address
}

// revShared holds the one-owner lists of a service being rebuilt: every
// address owned by only its ClusterIP part, or by only an unlabeled
// endpoint of it, points at the same list.
type revShared struct{ ip, ep *[]ReverseName }

// contributions lists what view v puts in the reverse map, sorted.
func contributions(v *ServiceView) []revItem {
	if v == nil || v.Kind == KindExternalName {
		return nil
	}
	items := make([]revItem, 0, len(v.ClusterIPs)+len(v.Endpoints))
	for _, a := range v.ClusterIPs {
		items = append(items, revItem{a, ReverseName{Namespace: v.Namespace, Service: v.Name}})
	}
	for _, e := range v.Endpoints {
		items = append(items, revItem{e.Addr, ReverseName{Namespace: v.Namespace, Service: v.Name, Endpoint: true, Label: e.Label}})
	}
	slices.SortFunc(items, func(a, b revItem) int {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		return compareReverse(a.name, b.name)
	})
	return items
}

func compareReverse(a, b ReverseName) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Service, b.Service),
		cmp.Compare(b2i(a.Endpoint), b2i(b.Endpoint)), strings.Compare(a.Label, b.Label))
}

// reverseChanges returns the new reverse entries of every address whose
// owners from service k differ between views old and nv; wmu held.
func (x *index) reverseChanges(k svcKey, old, nv *ServiceView) []revChange {
	o, n := contributions(old), contributions(nv)
	var share revShared
	// Adopt the lists the service already shares, so that a rebuild does not
	// leave equal copies behind for the addresses it does not touch.
	for _, it := range o {
		if share.ip != nil && share.ep != nil {
			break
		}
		if it.name.Label != "" {
			continue
		}
		if p := x.reverse(it.addr); p != nil && len(*p) == 1 && (*p)[0] == it.name {
			if it.name.Endpoint && share.ep == nil {
				share.ep = p
			} else if !it.name.Endpoint && share.ip == nil {
				share.ip = p
			}
		}
	}
	var out []revChange
	for i, j := 0, 0; i < len(o) || j < len(n); {
		var a netip.Addr
		switch {
		case j == len(n):
			a = o[i].addr
		case i == len(o):
			a = n[j].addr
		default:
			a = o[i].addr
			if n[j].addr.Less(a) {
				a = n[j].addr
			}
		}
		i2, j2 := i, j
		for i2 < len(o) && o[i2].addr == a {
			i2++
		}
		for j2 < len(n) && n[j2].addr == a {
			j2++
		}
		if !slices.Equal(o[i:i2], n[j:j2]) {
			out = append(out, x.reverseEntry(a, k, n[j:j2], &share))
		}
		i, j = i2, j2
	}
	return out
}

// reverseEntry is the owner list of addr with service k's part replaced by
// items: a fresh or shared list, since published ones are never modified.
func (x *index) reverseEntry(addr netip.Addr, k svcKey, items []revItem, share *revShared) revChange {
	var cur []ReverseName
	if p := x.reverse(addr); p != nil {
		cur = *p
	}
	names := make([]ReverseName, 0, len(cur)+len(items))
	for _, r := range cur {
		if r.Namespace != k.ns || r.Service != k.name {
			names = append(names, r)
		}
	}
	for _, it := range items {
		names = append(names, it.name)
	}
	if len(names) == 0 {
		return revChange{addr: addr}
	}
	if len(names) == 1 && len(items) == 1 && names[0].Label == "" {
		sp := &share.ip
		if names[0].Endpoint {
			sp = &share.ep
		}
		if *sp == nil {
			names = names[:1:1]
			*sp = &names
		}
		return revChange{addr: addr, names: *sp}
	}
	slices.SortFunc(names, compareReverse)
	return revChange{addr: addr, names: &names}
}
