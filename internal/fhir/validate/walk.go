package validate

import (
	"bytes"
	"strconv"
)

// slot is one element present in the object being checked: the variant a
// choice element took, and the nodes of its value and of its "_name"
// sibling (indexes into validator.nodes, -1 when absent).
type slot struct {
	e        *elemDef
	t        *typeRef
	val, ext int32
}

// mark is what one member of the object being checked turned out to be.
type mark struct {
	status markStatus
	slot   int32
}

type markStatus uint8

const (
	markUnknown  markStatus = iota // not an element here
	markSkip                       // resourceType at a resource's root
	markValue                      // an element's value
	markExt                        // a primitive element's "_name" sibling
	markRepeat                     // a name given twice
	markConflict                   // a second variant of a choice element
)

func (v *validator) members(n *node) []node { return v.nodes[n.first : n.first+n.count] }

// key returns a member's name, decoded if it holds escapes.
func (v *validator) key(n *node) []byte {
	if n.keyEsc {
		return unescape(v.data[n.keyStart:n.keyEnd])
	}
	return v.data[n.keyStart:n.keyEnd]
}

// str returns a string node's content, decoded if it holds escapes.
func (v *validator) str(n *node) []byte {
	if n.esc {
		return unescape(v.data[n.start:n.end])
	}
	return v.data[n.start:n.end]
}

// resource checks an object that must be a resource: of the type want, or
// of any type when want is "Resource". At the root the path starts with
// the resource type; inside, it goes on from the element that holds it.
func (v *validator) resource(n *node, want string, atRoot bool) string {
	var typeNode *node
	members := v.members(n)
	for i := range members {
		if string(v.key(&members[i])) == "resourceType" {
			typeNode = &members[i]
			break
		}
	}
	switch {
	case typeNode == nil:
		v.report("required", "The resource has no resourceType; add one naming its type, such as \"resourceType\": \"Patient\".")
		return ""
	case typeNode.kind != kindString:
		v.report("structure", "resourceType must be a string naming the resource type, not "+kindName(typeNode.kind)+".")
		return ""
	}
	name := v.str(typeNode)
	st := v.s.resources[string(name)]
	switch {
	case st == nil:
		v.report("structure", unknownTypeDiag(v.s, string(name)))
		return string(name)
	case want != "Resource" && st.name != want:
		v.report("structure", "This must be "+article(want)+" resource, not "+st.name+".")
		return st.name
	}
	if atRoot {
		v.path = append(v.path, st.name...)
		defer v.pop(0)
	}
	v.object(n, st, true)
	return st.name
}

// object checks the members of an object against a structure, in document
// order: first what the object lacks, then each member in turn.
func (v *validator) object(n *node, st *structDef, resourceRoot bool) {
	members := v.members(n)
	sbase, mbase := len(v.slots), len(v.marks)
	sawType := false
	for i := range members {
		m := &members[i]
		k := v.key(m)
		mk := mark{status: markUnknown, slot: -1}
		switch {
		case resourceRoot && string(k) == "resourceType":
			mk.status = markSkip
			if sawType {
				mk.status = markRepeat
			}
			sawType = true
		default:
			ext := len(k) > 0 && k[0] == '_'
			name := k
			if ext {
				name = k[1:]
			}
			f, ok := st.fields[string(name)]
			if ok && (!ext || (f.t.prim != nil && !f.t.prim.noExt)) {
				mk = v.claim(sbase, f, ext, n.first+int32(i))
			}
		}
		v.marks = append(v.marks, mk)
	}

	for _, e := range st.required {
		if !v.present(sbase, e) {
			p := v.push([]byte(e.name))
			v.report("required", requiredDiag(st, e))
			v.pop(p)
		}
	}

	for i := range members {
		if v.full {
			break
		}
		m := &members[i]
		mk := v.marks[mbase+i]
		if mk.status == markSkip {
			continue
		}
		k := v.key(m)
		name := k
		if mk.status != markUnknown && len(k) > 0 && k[0] == '_' {
			name = k[1:] // a primitive's extensions sit at the primitive's path
		}
		p := v.push(name)
		switch mk.status {
		case markUnknown:
			v.report("structure", unknownElementDiag(st, k))
		case markRepeat:
			v.report("structure", "'"+string(clip(k))+"' appears more than once in this object; give it once (JSON member names must be unique).")
		case markConflict:
			v.report("invalid", conflictDiag(v.slots[mk.slot], k))
		case markValue:
			v.value(v.slots[mk.slot], m, name)
		case markExt:
			v.extension(v.slots[mk.slot], m, name)
		}
		v.pop(p)
	}
	v.slots, v.marks = v.slots[:sbase], v.marks[:mbase]
}

// claim records member idx as the value or "_name" sibling of field f in
// the object whose slots start at sbase.
func (v *validator) claim(sbase int, f field, ext bool, idx int32) mark {
	status := markValue
	if ext {
		status = markExt
	}
	for j := sbase; j < len(v.slots); j++ {
		s := &v.slots[j]
		if s.e != f.e {
			continue
		}
		at := &s.val
		if ext {
			at = &s.ext
		}
		switch {
		case s.t != f.t:
			return mark{markConflict, int32(j)}
		case *at >= 0:
			return mark{markRepeat, int32(j)}
		}
		*at = idx
		return mark{status, int32(j)}
	}
	s := slot{e: f.e, t: f.t, val: -1, ext: -1}
	if ext {
		s.ext = idx
	} else {
		s.val = idx
	}
	v.slots = append(v.slots, s)
	return mark{status, int32(len(v.slots) - 1)}
}

func (v *validator) present(sbase int, e *elemDef) bool {
	for j := sbase; j < len(v.slots); j++ {
		if v.slots[j].e == e {
			return true
		}
	}
	return false
}

// hasItem reports whether the array at node index idx has a non-null item
// at position i.
func (v *validator) hasItem(idx int32, i int) bool {
	if idx < 0 || v.nodes[idx].kind != kindArray {
		return false
	}
	items := v.members(&v.nodes[idx])
	return i < len(items) && items[i].kind != kindNull
}

// value checks an element's value: its array shape, then each item.
func (v *validator) value(s slot, n *node, name []byte) {
	if !s.e.many {
		switch n.kind {
		case kindArray:
			v.report("structure", "'"+string(clip(name))+"' takes a single value, not an array; give the value without [ ].")
		case kindNull:
			v.report("structure", "'"+string(clip(name))+"' is null; leave the element out instead (null is allowed only inside arrays of primitives, lined up with a '_' sibling).")
		default:
			v.one(s.t, n, name)
		}
		return
	}
	if !v.arrayShape(n, name) {
		return
	}
	items := v.members(n)
	for i := range items {
		if v.full {
			return
		}
		p := v.pushIndex(i)
		switch {
		case items[i].kind != kindNull:
			v.one(s.t, &items[i], name)
		case s.t.prim == nil:
			v.report("structure", "null is not allowed in '"+string(clip(name))+"'; remove the item.")
		case !v.hasItem(s.ext, i):
			v.report("structure", "null in '"+string(clip(name))+"' is allowed only where '_"+string(clip(name))+"' has an item at the same position; remove it or add that item.")
		}
		v.pop(p)
	}
}

// arrayShape reports whether n is a non-empty array, and reports an issue
// when it is not.
func (v *validator) arrayShape(n *node, name []byte) bool {
	switch {
	case n.kind != kindArray:
		v.report("structure", "'"+string(clip(name))+"' repeats, so it must be a JSON array even for one item, not "+kindName(n.kind)+"; wrap the value in [ ].")
		return false
	case n.count == 0:
		v.report("structure", "'"+string(clip(name))+"' is an empty array; leave the element out instead.")
		return false
	}
	return true
}

// extension checks the "_name" sibling of a primitive element: an object
// with id and extensions, or for a repeating element an array of them lined
// up with the values (https://hl7.org/fhir/R4/json.html#primitive).
func (v *validator) extension(s slot, n *node, name []byte) {
	under := append([]byte{'_'}, clip(name)...)
	if !s.e.many {
		v.elementObject(n, under)
		return
	}
	if !v.arrayShape(n, under) {
		return
	}
	if s.val >= 0 && v.nodes[s.val].kind == kindArray && v.nodes[s.val].count != n.count {
		v.report("structure", "'"+string(under)+"' and '"+string(clip(name))+"' differ in length ("+strconv.Itoa(int(n.count))+" and "+
			strconv.Itoa(int(v.nodes[s.val].count))+"); the two arrays must line up item for item, with null where one side has nothing.")
	}
	items := v.members(n)
	for i := range items {
		if v.full {
			return
		}
		p := v.pushIndex(i)
		if items[i].kind == kindNull {
			if !v.hasItem(s.val, i) {
				v.report("structure", "null in '"+string(under)+"' is allowed only where '"+string(clip(name))+"' has a value at the same position; remove it.")
			}
		} else {
			v.elementObject(&items[i], under)
		}
		v.pop(p)
	}
}

// elementObject checks the object that carries a primitive's id and
// extensions.
func (v *validator) elementObject(n *node, under []byte) {
	switch {
	case n.kind != kindObject:
		v.report("structure", "'"+string(under)+"' must be a JSON object holding the value's id and extension, not "+kindName(n.kind)+".")
	case n.count == 0:
		v.report("structure", "'"+string(under)+"' is an empty object; leave it out instead.")
	default:
		v.object(n, v.s.element, false)
	}
}

// one checks a single (non-null) value of type t.
func (v *validator) one(t *typeRef, n *node, name []byte) {
	switch {
	case t.prim != nil:
		v.primitive(t.prim, n, name)
	case n.kind != kindObject:
		v.report("structure", "'"+string(clip(name))+"' must be a JSON object ("+t.name+"), not "+kindName(n.kind)+".")
	case t.resource:
		v.resource(n, t.name, false)
	case n.count == 0:
		v.report("structure", "'"+string(clip(name))+"' is an empty object; leave the element out instead.")
	default:
		v.object(n, t.st, false)
	}
}

// primitive checks a primitive value's JSON type and format.
func (v *validator) primitive(p *primType, n *node, name []byte) {
	switch p.json {
	case jsonBoolean:
		if n.kind != kindTrue && n.kind != kindFalse {
			v.report("value", "'"+string(clip(name))+"' is a boolean: write true or false without quotes, not "+kindName(n.kind)+".")
		}
	case jsonNumber:
		if n.kind != kindNumber {
			v.report("value", "'"+string(clip(name))+"' is "+article(p.name)+": write a JSON number without quotes, not "+kindName(n.kind)+".")
			return
		}
		lit := v.data[n.start:n.end]
		if (p.match != nil && !p.match(lit)) || (p.integer && !inRange(lit, p.lowest)) {
			v.report("value", formatDiag(p, name))
		}
	case jsonString:
		if n.kind != kindString {
			v.report("value", "'"+string(clip(name))+"' is "+article(p.name)+": write a JSON string, not "+kindName(n.kind)+".")
			return
		}
		s := v.str(n)
		switch {
		case len(s) == 0:
			v.report("value", "'"+string(clip(name))+"' is an empty string; leave the element out instead.")
		case len(bytes.TrimSpace(s)) == 0:
			v.report("value", "'"+string(clip(name))+"' holds only whitespace; a FHIR string must have non-whitespace content.")
		case p.match == nil:
			if !isDiv(s) {
				v.report("value", "'"+string(clip(name))+"' must be XHTML whose root is a <div> element (xmlns=\"http://www.w3.org/1999/xhtml\").")
			}
		case !p.match(s):
			v.report("value", formatDiag(p, name))
		}
	}
}

// inRange reports whether lit, an integer literal that matched its type's
// regex, is at least lowest and fits in 32 bits.
func inRange(lit []byte, lowest int64) bool {
	if len(lit) > 11 {
		return false
	}
	var n int64
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	for _, c := range lit {
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n >= lowest && n <= 1<<31-1
}

// isDiv reports whether s starts with a <div> start tag.
func isDiv(s []byte) bool {
	if !bytes.HasPrefix(s, []byte("<div")) || len(s) == 4 {
		return false
	}
	switch s[4] {
	case '>', ' ', '\t', '\r', '\n', '/':
		return true
	}
	return false
}
