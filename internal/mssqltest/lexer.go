package mssqltest

import (
	"fmt"
	"strings"
	"unicode"
)

type tokKind int

const (
	tEOF tokKind = iota
	tWord
	tString
	tNumber
	tPunct
)

// token is one lexical T-SQL token.
type token struct {
	kind tokKind
	text string // source text (for "Incorrect syntax near")
	val  string // string literal value, word or number text
	// quoted: a delimited identifier ([x] or "x"), never a keyword.
	quoted bool
}

// sqlError is a T-SQL compile error reported to the client.
type sqlError struct{ err Error }

func (e *sqlError) Error() string { return e.err.Message }

func syntaxError(near string) error {
	return &sqlError{err: Error{Number: 102, State: 1, Class: 15, Message: fmt.Sprintf("Incorrect syntax near '%s'.", near)}}
}

// lex splits T-SQL text into tokens. Comments are skipped.
func lex(sql string) ([]token, error) {
	rs := []rune(sql)
	var out []token
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '-' && i+1 < len(rs) && rs[i+1] == '-':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(rs) && rs[i+1] == '*':
			j := i + 2
			for j+1 < len(rs) && (rs[j] != '*' || rs[j+1] != '/') {
				j++
			}
			if j+1 >= len(rs) {
				return nil, &sqlError{err: Error{Number: 113, State: 1, Class: 15, Message: "Missing end comment mark '*/'."}}
			}
			i = j + 2
		case c == '\'' || ((c == 'N' || c == 'n') && i+1 < len(rs) && rs[i+1] == '\''):
			start := i
			if c != '\'' {
				i++
			}
			i++ // opening quote
			var b strings.Builder
			closed := false
			for i < len(rs) {
				if rs[i] == '\'' {
					if i+1 < len(rs) && rs[i+1] == '\'' {
						b.WriteRune('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteRune(rs[i])
				i++
			}
			if !closed {
				return nil, &sqlError{err: Error{Number: 105, State: 1, Class: 15,
					Message: fmt.Sprintf("Unclosed quotation mark after the character string '%s'.", b.String())}}
			}
			out = append(out, token{kind: tString, text: string(rs[start:i]), val: b.String()})
		case c == '[' || c == '"':
			closer := ']'
			if c == '"' {
				closer = '"'
			}
			// A delimited identifier: the closer doubled stands for itself
			// ("]]" in [...], `""` in "..."), as in T-SQL's QUOTENAME.
			start := i
			i++
			var b strings.Builder
			closed := false
			for i < len(rs) {
				if rs[i] == closer {
					if i+1 < len(rs) && rs[i+1] == closer {
						b.WriteRune(closer)
						i += 2
						continue
					}
					closed = true
					break
				}
				b.WriteRune(rs[i])
				i++
			}
			if !closed {
				return nil, syntaxError(string(rs[start:]))
			}
			i++
			out = append(out, token{kind: tWord, text: string(rs[start:i]), val: b.String(), quoted: true})
		case unicode.IsDigit(c):
			start := i
			for i < len(rs) && unicode.IsDigit(rs[i]) {
				i++
			}
			out = append(out, token{kind: tNumber, text: string(rs[start:i]), val: string(rs[start:i])})
		case unicode.IsLetter(c) || c == '_' || c == '@' || c == '#':
			start := i
			for i < len(rs) && (unicode.IsLetter(rs[i]) || unicode.IsDigit(rs[i]) || strings.ContainsRune("_@#$", rs[i])) {
				i++
			}
			w := string(rs[start:i])
			out = append(out, token{kind: tWord, text: w, val: w})
		default:
			out = append(out, token{kind: tPunct, text: string(c), val: string(c)})
			i++
		}
	}
	return append(out, token{kind: tEOF}), nil
}

// parser walks a token slice.
type parser struct {
	toks []token
	pos  int
	last string // text of the last consumed token
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
		p.last = t.text
	}
	return t
}

// errHere reports a syntax error at the current token.
func (p *parser) errHere() error {
	t := p.peek()
	if t.kind == tEOF {
		return syntaxError(p.last)
	}
	return syntaxError(t.text)
}

func (p *parser) isWord(w string) bool {
	t := p.peek()
	return t.kind == tWord && !t.quoted && strings.EqualFold(t.val, w)
}

func (p *parser) isPunct(c string) bool {
	t := p.peek()
	return t.kind == tPunct && t.val == c
}

// words consumes a sequence of keywords.
func (p *parser) words(ws ...string) error {
	for _, w := range ws {
		if !p.isWord(w) {
			return p.errHere()
		}
		p.next()
	}
	return nil
}

func (p *parser) punct(c string) error {
	if !p.isPunct(c) {
		return p.errHere()
	}
	p.next()
	return nil
}

func (p *parser) str() (string, error) {
	if p.peek().kind != tString {
		return "", p.errHere()
	}
	return p.next().val, nil
}

// end accepts optional semicolons and then the end of the text.
func (p *parser) end() error {
	for p.isPunct(";") {
		p.next()
	}
	if p.peek().kind != tEOF {
		return p.errHere()
	}
	return nil
}
