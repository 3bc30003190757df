//! The evaluator: walks parsed nodes against a [`TValue`] with a step budget
//! and an output cap, so a hostile template fails fast instead of hanging.

use super::lex::line_col;
use super::parse::{Branch, Cmd, Node, Operand, Pipe, Term};
use super::printf::sprintf;
use super::value::TValue;
use super::{Limits, TemplateError};

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct Exec<'a> {
    src: &'a str,
    limits: Limits,
    steps: u64,
    out: String,
    vars: Vec<(String, TValue)>,
}

impl<'a> Exec<'a> {
    pub(crate) fn new(src: &'a str, limits: Limits, root: TValue) -> Self {
        Self {
            src,
            limits,
            steps: 0,
            out: String::new(),
            vars: vec![("$".to_owned(), root)],
        }
    }

    /// Runs `nodes` with the root as dot and returns the output.
    pub(crate) fn run(mut self, nodes: &[Node]) -> Result<String, TemplateError> {
        let root = self.vars[0].1.clone();
        self.walk(nodes, &root)?;
        Ok(self.out)
    }

    fn err(&self, pos: usize, msg: impl Into<String>) -> TemplateError {
        let (line, col) = line_col(self.src, pos);
        TemplateError::Exec {
            line,
            col,
            msg: msg.into(),
        }
    }

    /// Charges `n` steps against the budget.
    fn charge(&mut self, n: u64) -> Result<(), TemplateError> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.max_steps {
            return Err(TemplateError::StepLimit(self.limits.max_steps));
        }
        Ok(())
    }

    /// Copying lists and long strings costs in proportion to their size, so
    /// `slice` over a big list inside a range cannot go quadratic for free.
    fn charge_value(&mut self, v: &TValue) -> Result<(), TemplateError> {
        let n = match v {
            // Lists are shared, not copied.
            TValue::List(_) => 0,
            TValue::Map(m) => m.len() as u64,
            TValue::Struct(f) => f.len() as u64,
            TValue::Str(s) => (s.len() / 256) as u64,
            _ => 0,
        };
        self.charge(n)
    }

    fn check_len(&self, len: usize) -> Result<(), TemplateError> {
        if len > self.limits.max_output {
            return Err(TemplateError::OutputLimit(self.limits.max_output));
        }
        Ok(())
    }

    fn walk(&mut self, nodes: &[Node], dot: &TValue) -> Result<Flow, TemplateError> {
        for node in nodes {
            self.charge(1)?;
            match node {
                Node::Text(t) => {
                    self.check_len(self.out.len() + t.len())?;
                    self.out.push_str(t);
                }
                Node::Action(pipe) => {
                    let v = self.pipe(pipe, dot)?;
                    if pipe.decl.is_empty() {
                        let start = self.out.len();
                        v.print_to(&mut self.out);
                        self.charge(((self.out.len() - start) / 256) as u64)?;
                        self.check_len(self.out.len())?;
                    }
                }
                Node::If(b) => {
                    let mark = self.vars.len();
                    let v = self.pipe(&b.pipe, dot)?;
                    let list = if v.truthy() { &b.list } else { &b.else_list };
                    let flow = self.walk(list, dot);
                    self.vars.truncate(mark);
                    match flow? {
                        Flow::Normal => {}
                        f => return Ok(f),
                    }
                }
                Node::With(b) => {
                    let mark = self.vars.len();
                    let v = self.pipe(&b.pipe, dot)?;
                    let flow = if v.truthy() {
                        self.walk(&b.list, &v)
                    } else {
                        self.walk(&b.else_list, dot)
                    };
                    self.vars.truncate(mark);
                    match flow? {
                        Flow::Normal => {}
                        f => return Ok(f),
                    }
                }
                Node::Range(b) => {
                    let mark = self.vars.len();
                    let flow = self.range(b, dot);
                    self.vars.truncate(mark);
                    match flow? {
                        Flow::Normal => {}
                        f => return Ok(f),
                    }
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, b: &Branch, dot: &TValue) -> Result<Flow, TemplateError> {
        let v = self.cmds(&b.pipe, dot)?;
        let empty = match &v {
            TValue::List(l) => l.is_empty(),
            TValue::Map(m) => m.is_empty(),
            TValue::Int(n) => *n <= 0,
            TValue::Nil => true,
            other => {
                return Err(self.err(
                    b.pipe.pos,
                    format!("range can't iterate over {}", other.to_print_string()),
                ))
            }
        };
        if empty {
            return self.walk(&b.else_list, dot);
        }
        match &v {
            TValue::List(l) => {
                for (i, elem) in l.iter().enumerate() {
                    if let Flow::Break = self.iteration(b, TValue::Int(i as i64), elem)? {
                        break;
                    }
                }
            }
            TValue::Map(m) => {
                for (k, elem) in m {
                    if let Flow::Break = self.iteration(b, TValue::Str(k.clone()), elem)? {
                        break;
                    }
                }
            }
            // Go 1.22 ranges over an integer: 0..n.
            TValue::Int(n) => {
                for i in 0..*n {
                    if let Flow::Break = self.iteration(b, TValue::Int(i), &TValue::Int(i))? {
                        break;
                    }
                }
            }
            _ => {}
        }
        Ok(Flow::Normal)
    }

    /// One pass of a range body with its variables bound.
    fn iteration(&mut self, b: &Branch, key: TValue, elem: &TValue) -> Result<Flow, TemplateError> {
        self.charge(1)?;
        let mark = self.vars.len();
        match b.pipe.decl.as_slice() {
            [] => {}
            [one] => self.bind(one, elem.clone(), b.pipe.assign),
            [k, v, ..] => {
                self.bind(k, key, b.pipe.assign);
                self.bind(v, elem.clone(), b.pipe.assign);
            }
        }
        let flow = self.walk(&b.list, elem);
        self.vars.truncate(mark);
        flow
    }

    fn bind(&mut self, name: &str, v: TValue, assign: bool) {
        if assign {
            if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v;
                return;
            }
        }
        self.vars.push((name.to_owned(), v));
    }

    /// Evaluates a pipeline and performs its declaration or assignment.
    fn pipe(&mut self, pipe: &Pipe, dot: &TValue) -> Result<TValue, TemplateError> {
        let v = self.cmds(pipe, dot)?;
        for name in &pipe.decl {
            self.bind(name, v.clone(), pipe.assign);
        }
        Ok(v)
    }

    /// Evaluates a pipeline's commands, each fed the previous result last.
    fn cmds(&mut self, pipe: &Pipe, dot: &TValue) -> Result<TValue, TemplateError> {
        let mut prev: Option<TValue> = None;
        for cmd in &pipe.cmds {
            self.charge(1)?;
            prev = Some(self.cmd(cmd, dot, prev)?);
        }
        Ok(prev.unwrap_or(TValue::Nil))
    }

    fn cmd(
        &mut self,
        cmd: &Cmd,
        dot: &TValue,
        fin: Option<TValue>,
    ) -> Result<TValue, TemplateError> {
        let first = &cmd.args[0];
        if let Term::Ident(name) = &first.term {
            return self.call(name, first.pos, &cmd.args[1..], dot, fin);
        }
        if cmd.args.len() > 1 || fin.is_some() {
            return Err(self.err(cmd.pos, "can't give argument to non-function"));
        }
        self.operand(first, dot)
    }

    fn operand(&mut self, op: &Operand, dot: &TValue) -> Result<TValue, TemplateError> {
        // Literals, calls and sub-pipelines first (they need `&mut self`);
        // dot and variables are then walked by reference so a field chain
        // copies only its final value.
        let owned = match &op.term {
            Term::Dot | Term::Var(_) => None,
            // A function name as an argument is a call without arguments.
            Term::Ident(name) => Some(self.call(name, op.pos, &[], dot, None)?),
            Term::Str(s) => Some(TValue::Str(s.clone())),
            Term::Int(i) => Some(TValue::Int(*i)),
            Term::Float(f) => Some(TValue::Float(*f)),
            Term::Bool(b) => Some(TValue::Bool(*b)),
            Term::Nil => return Err(self.err(op.pos, "nil is not a command")),
            Term::Pipe(p) => {
                let mark = self.vars.len();
                let r = self.pipe(p, dot);
                self.vars.truncate(mark);
                Some(r?)
            }
        };
        let v = {
            let mut cur: &TValue = match (&owned, &op.term) {
                (Some(v), _) => v,
                (None, Term::Var(name)) => match self.vars.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => v,
                    None => return Err(self.err(op.pos, format!("undefined variable `{name}`"))),
                },
                (None, _) => dot,
            };
            for name in &op.chain {
                cur = self.field(cur, name, op.pos)?;
            }
            cur.clone()
        };
        self.charge_value(&v)?;
        Ok(v)
    }

    fn field<'v>(
        &self,
        v: &'v TValue,
        name: &str,
        pos: usize,
    ) -> Result<&'v TValue, TemplateError> {
        static NIL: TValue = TValue::Nil;
        match v {
            // `missingkey=zero` on `map[string]any` gives nil.
            TValue::Map(m) => Ok(m.get(name).unwrap_or(&NIL)),
            TValue::Struct(fields) => match fields.iter().find(|f| f.go == name) {
                Some(f) => Ok(&f.value),
                None => Err(self.err(pos, format!("can't evaluate field {name} in type struct"))),
            },
            TValue::Nil => {
                Err(self.err(pos, format!("nil pointer evaluating interface {{}}.{name}")))
            }
            other => Err(self.err(
                pos,
                format!("can't evaluate field {name} in type {}", other.type_name()),
            )),
        }
    }

    fn args(
        &mut self,
        args: &[Operand],
        dot: &TValue,
        fin: Option<TValue>,
    ) -> Result<Vec<TValue>, TemplateError> {
        let mut out = Vec::with_capacity(args.len() + 1);
        for a in args {
            out.push(self.arg(a, dot)?);
        }
        out.extend(fin);
        Ok(out)
    }

    fn arg(&mut self, a: &Operand, dot: &TValue) -> Result<TValue, TemplateError> {
        if let Term::Nil = a.term {
            if a.chain.is_empty() {
                return Ok(TValue::Nil);
            }
        }
        self.operand(a, dot)
    }

    fn call(
        &mut self,
        name: &str,
        pos: usize,
        args: &[Operand],
        dot: &TValue,
        fin: Option<TValue>,
    ) -> Result<TValue, TemplateError> {
        self.charge(1)?;
        // `and`/`or` evaluate lazily and return the deciding operand (Go 1.18).
        if name == "and" || name == "or" {
            let n = args.len() + usize::from(fin.is_some());
            if n == 0 {
                return Err(self.err(
                    pos,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut last = TValue::Nil;
            for a in args {
                last = self.arg(a, dot)?;
                if last.truthy() != (name == "and") {
                    return Ok(last);
                }
            }
            if let Some(f) = fin {
                last = f;
            }
            return Ok(last);
        }
        let argv = self.args(args, dot, fin)?;
        let r = self.builtin(name, pos, argv)?;
        self.charge_value(&r)?;
        if let TValue::Str(s) = &r {
            self.check_len(s.len())?;
        }
        Ok(r)
    }

    fn want(&self, name: &str, pos: usize, argv: &[TValue], n: usize) -> Result<(), TemplateError> {
        if argv.len() != n {
            return Err(self.err(
                pos,
                format!(
                    "wrong number of args for {name}: want {n} got {}",
                    argv.len()
                ),
            ));
        }
        Ok(())
    }

    fn builtin(
        &mut self,
        name: &str,
        pos: usize,
        argv: Vec<TValue>,
    ) -> Result<TValue, TemplateError> {
        let call_err =
            |this: &Self, msg: String| this.err(pos, format!("error calling {name}: {msg}"));
        match name {
            "not" => {
                self.want(name, pos, &argv, 1)?;
                Ok(TValue::Bool(!argv[0].truthy()))
            }
            "len" => {
                self.want(name, pos, &argv, 1)?;
                let n = match &argv[0] {
                    TValue::Str(s) => s.len(),
                    TValue::List(l) => l.len(),
                    TValue::Map(m) => m.len(),
                    other => {
                        return Err(call_err(self, format!("len of type {}", other.type_name())))
                    }
                };
                Ok(TValue::Int(n as i64))
            }
            "index" => {
                let mut it = argv.into_iter();
                let Some(mut v) = it.next() else {
                    return Err(
                        self.err(pos, "wrong number of args for index: want at least 1 got 0")
                    );
                };
                for idx in it {
                    v = match (v, idx) {
                        (TValue::List(l), TValue::Int(i)) => {
                            let len = l.len();
                            match usize::try_from(i).ok().and_then(|i| l.get(i).cloned()) {
                                Some(x) => x,
                                None => {
                                    return Err(call_err(
                                        self,
                                        format!("index out of range: {i} (len {len})"),
                                    ))
                                }
                            }
                        }
                        (TValue::Map(m), TValue::Str(k)) => {
                            m.get(&k).cloned().unwrap_or(TValue::Nil)
                        }
                        (TValue::Str(s), TValue::Int(i)) => match usize::try_from(i)
                            .ok()
                            .and_then(|i| s.as_bytes().get(i))
                        {
                            Some(&b) => TValue::Int(i64::from(b)),
                            None => return Err(call_err(self, format!("index out of range: {i}"))),
                        },
                        (TValue::Nil, _) => {
                            return Err(call_err(self, "index of untyped nil".to_owned()))
                        }
                        (v, i) => {
                            return Err(call_err(
                                self,
                                format!("cannot index {} with {}", v.type_name(), i.type_name()),
                            ))
                        }
                    };
                }
                Ok(v)
            }
            "slice" => self.slice(pos, argv),
            "eq" => {
                if argv.len() < 2 {
                    return Err(self.err(pos, "wrong number of args for eq: want at least 2"));
                }
                for other in &argv[1..] {
                    if self.equal(pos, &argv[0], other)? {
                        return Ok(TValue::Bool(true));
                    }
                }
                Ok(TValue::Bool(false))
            }
            "ne" => {
                self.want(name, pos, &argv, 2)?;
                Ok(TValue::Bool(!self.equal(pos, &argv[0], &argv[1])?))
            }
            "lt" | "le" | "gt" | "ge" => {
                self.want(name, pos, &argv, 2)?;
                let ord = self.compare(pos, &argv[0], &argv[1])?;
                use std::cmp::Ordering::*;
                let r = match name {
                    "lt" => ord == Less,
                    "le" => ord != Greater,
                    "gt" => ord == Greater,
                    _ => ord != Less,
                };
                Ok(TValue::Bool(r))
            }
            "print" | "println" => {
                let mut s = String::new();
                for (i, a) in argv.iter().enumerate() {
                    // Sprint adds spaces only between two non-strings; Sprintln always.
                    if i > 0
                        && (name == "println"
                            || !(matches!(a, TValue::Str(_))
                                || matches!(argv[i - 1], TValue::Str(_))))
                    {
                        s.push(' ');
                    }
                    a.print_to(&mut s);
                    self.check_len(s.len())?;
                }
                if name == "println" {
                    s.push('\n');
                }
                Ok(TValue::Str(s))
            }
            "printf" => {
                let mut it = argv.into_iter();
                let fmt = match it.next() {
                    Some(TValue::Str(f)) => f,
                    Some(other) => {
                        return Err(self.err(
                            pos,
                            format!("printf format must be a string, not {}", other.type_name()),
                        ))
                    }
                    None => {
                        return Err(self.err(
                            pos,
                            "wrong number of args for printf: want at least 1 got 0",
                        ))
                    }
                };
                let rest: Vec<TValue> = it.collect();
                let s = sprintf(&fmt, &rest, self.limits.max_output);
                Ok(TValue::Str(s))
            }
            "json" => {
                self.want(name, pos, &argv, 1)?;
                let mut s = String::new();
                argv[0].json_to(&mut s);
                Ok(TValue::Str(s))
            }
            "currentDate" => Ok(TValue::Str(date_days_ago(0))),
            "yesterdayDate" => Ok(TValue::Str(date_days_ago(1))),
            _ => Err(self.err(pos, format!("function `{name}` not defined"))),
        }
    }

    fn slice(&mut self, pos: usize, argv: Vec<TValue>) -> Result<TValue, TemplateError> {
        let mut it = argv.into_iter();
        let Some(v) = it.next() else {
            return Err(self.err(pos, "wrong number of args for slice: want at least 1 got 0"));
        };
        let mut idx = Vec::new();
        for a in it {
            match a {
                TValue::Int(i) if i >= 0 => idx.push(i as usize),
                other => {
                    return Err(self.err(
                        pos,
                        format!(
                            "error calling slice: invalid slice index {}",
                            other.to_print_string()
                        ),
                    ))
                }
            }
        }
        let len = match &v {
            TValue::List(l) => l.len(),
            TValue::Str(s) => s.len(),
            TValue::Nil => return Err(self.err(pos, "error calling slice: slice of untyped nil")),
            other => {
                return Err(self.err(
                    pos,
                    format!(
                        "error calling slice: can't slice item of type {}",
                        other.type_name()
                    ),
                ))
            }
        };
        if idx.len() > 3 || (idx.len() == 3 && matches!(v, TValue::Str(_))) {
            return Err(self.err(pos, "error calling slice: too many slice indexes"));
        }
        let lo = idx.first().copied().unwrap_or(0);
        let hi = idx.get(1).copied().unwrap_or(len);
        let cap = idx.get(2).copied().unwrap_or(len);
        if lo > hi || hi > cap || cap > len {
            return Err(self.err(
                pos,
                format!("error calling slice: index out of range: {lo}:{hi} (len {len})"),
            ));
        }
        Ok(match v {
            TValue::List(l) => TValue::List(l.slice(lo, hi)),
            TValue::Str(s) => {
                TValue::Str(String::from_utf8_lossy(&s.as_bytes()[lo..hi]).into_owned())
            }
            _ => TValue::Nil,
        })
    }

    fn equal(&self, pos: usize, a: &TValue, b: &TValue) -> Result<bool, TemplateError> {
        Ok(match (a, b) {
            (TValue::Nil, TValue::Nil) => true,
            (TValue::Nil, _) | (_, TValue::Nil) => false,
            (TValue::Bool(x), TValue::Bool(y)) => x == y,
            (TValue::Int(x), TValue::Int(y)) => x == y,
            (TValue::Float(x), TValue::Float(y)) => x == y,
            // Go would refuse int against float; JSON numbers make that too strict.
            (TValue::Int(x), TValue::Float(y)) | (TValue::Float(y), TValue::Int(x)) => {
                (*x as f64) == *y
            }
            (TValue::Str(x), TValue::Str(y)) => x == y,
            (TValue::List(_) | TValue::Map(_), _) | (_, TValue::List(_) | TValue::Map(_)) => {
                return Err(self.err(pos, "error calling eq: non-comparable type"))
            }
            (TValue::Struct(x), TValue::Struct(y)) => x == y,
            _ => return Err(self.err(pos, "error calling eq: incompatible types for comparison")),
        })
    }

    fn compare(
        &self,
        pos: usize,
        a: &TValue,
        b: &TValue,
    ) -> Result<std::cmp::Ordering, TemplateError> {
        let bad = || self.err(pos, "incompatible types for comparison");
        match (a, b) {
            (TValue::Int(x), TValue::Int(y)) => Ok(x.cmp(y)),
            (TValue::Str(x), TValue::Str(y)) => Ok(x.cmp(y)),
            (TValue::Float(_) | TValue::Int(_), TValue::Float(_) | TValue::Int(_)) => {
                let f = |v: &TValue| match v {
                    TValue::Int(i) => *i as f64,
                    TValue::Float(f) => *f,
                    _ => 0.0,
                };
                f(a).partial_cmp(&f(b)).ok_or_else(bad)
            }
            _ => Err(self.err(pos, "invalid type for comparison")),
        }
    }
}

/// Today's (or an earlier) UTC date as `YYYY-MM-DD`, the format Ollama's
/// `currentDate` uses. Computed here to avoid a date crate for one function.
fn date_days_ago(days: i64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = crate::template::civil_from_days((secs / 86_400) as i64 - days);
    format!("{y:04}-{m:02}-{d:02}")
}
