//! The per-virtual-host route index: finds Envoy's first matching route without scanning them
//! all.
//!
//! Envoy evaluates a virtual host's routes in declaration order and takes the first whose
//! conditions all hold (`RouteMatcher::route`, SEMANTICS §2.1). The index keeps that result
//! exactly; it only narrows the set of routes whose full matcher is evaluated. It is built from
//! the routes' path specifiers, which every route needs to hold (except `connect_matcher`):
//!
//! | path specifier | source of candidates |
//! |---|---|
//! | `path` | a hash map from the ASCII-lowercased path to the routes, so case-sensitive and case-insensitive routes share one lookup |
//! | `prefix`, `path_separated_prefix` | a byte trie over the lowercased prefix; every route stored on a node the request's lowercased path walks through is a candidate |
//! | `safe_regex`, URI templates | the trie again, keyed by the pattern's *literal prefix* (the text every full match starts with), when it has one |
//! | `safe_regex` without a literal prefix | in declaration order, in chunks of [`REGEX_CHUNK`] guarded by one [`RegexSet`] each: a chunk whose set does not match the path contributes nothing |
//! | anything else (`connect_matcher`, templates without a literal prefix) | always a candidate |
//!
//! Every source is a superset of the routes whose path specifier holds (the lowercased keys and
//! hash collisions only add candidates), and each source yields its routes in ascending order.
//! A lookup merges the sources in declaration order and evaluates each candidate's full
//! [`RouteMatcher`](crate::matcher::RouteMatcher) (runtime fraction, gRPC, headers, query
//! parameters, TLS context and the path itself) in that order; the first full match wins. So a
//! route guarded by a header or a runtime fraction is still tried exactly where Envoy would
//! try it, and a failed condition simply moves on to the next candidate.
//!
//! A lookup does not allocate: the lists are borrowed from the index and the merge state lives
//! on the stack (the `regex` crate allocates a matching cache on a thread's first use of each
//! set). In the pathological case of a path that walks through more than [`MAX_CHAIN`] trie
//! nodes holding routes (as many nested prefixes of one path), the lookup falls back to the
//! linear scan, which gives the same result.
//!
//! Cost: one hash of the path, one trie walk (one binary search per path byte), one `is_match`
//! per chunk of prefix-less regexes, plus one full-matcher evaluation per candidate up to the
//! winner. Apart from the prefix-less regexes, none of it grows with the number of routes whose
//! path cannot match. Routes that share a path and differ only in headers (or other
//! conditions) are all candidates for that path and are evaluated in order, as Envoy does.

use std::collections::BTreeMap;

use crate::FastMap as HashMap;

use regex::RegexSet;

use crate::matcher::RequestView;
use crate::matcher::path::PathMatcher;
use crate::table::CompiledRoute;

/// Prefix-less regex routes are filtered by one [`RegexSet`] per this many routes.
pub(crate) const REGEX_CHUNK: usize = 32;

/// The most trie nodes holding routes that one lookup merges before it falls back to the
/// linear scan.
pub(crate) const MAX_CHAIN: usize = 32;

/// Candidate lists merged by one lookup: the fallback list, the exact-path list and the trie
/// chain.
const MAX_LISTS: usize = MAX_CHAIN + 2;

/// The first route, in declaration order, whose conditions all hold: Envoy's linear scan.
pub(crate) fn linear(
    routes: &[CompiledRoute],
    req: &RequestView<'_>,
    random: u64,
) -> Option<usize> {
    routes.iter().position(|r| r.matcher.matches(req, random))
}

// === impl RouteIndex ===

/// The candidate index of one virtual host's routes (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct RouteIndex {
    /// [`fold_hash`] of the path → `path` routes, ascending.
    exact: HashMap<u64, Box<[u32]>>,
    /// `prefix`, `path_separated_prefix` and literal-prefixed regex and template routes.
    trie: Trie,
    /// Regex routes without a literal prefix.
    regexes: RegexChunks,
    /// Routes that are candidates for every request, ascending.
    always: Box<[u32]>,
    /// Too many routes to number with `u32`: scan linearly.
    linear_only: bool,
}

impl RouteIndex {
    /// Indexes compiled routes by their path specifiers.
    pub(crate) fn build(routes: &[CompiledRoute]) -> Self {
        if u32::try_from(routes.len()).is_err() {
            return Self {
                linear_only: true,
                ..Self::default()
            };
        }
        let mut exact: HashMap<u64, Vec<u32>> = HashMap::default();
        let mut trie = TrieBuilder::default();
        let mut regexes = Vec::new();
        let mut always = Vec::new();
        for (i, route) in (0u32..).zip(routes) {
            match &route.matcher.path {
                PathMatcher::Exact { path, .. } => {
                    exact.entry(fold_hash(path.as_bytes())).or_default().push(i);
                }
                PathMatcher::Prefix { prefix, .. }
                | PathMatcher::SeparatedPrefix { prefix, .. } => {
                    trie.insert(prefix.as_bytes(), i);
                }
                PathMatcher::Regex(re) => {
                    let inner = crate::matcher::full_match_inner(re);
                    match literal_prefix(inner) {
                        Some(p) => trie.insert(p.as_bytes(), i),
                        None => regexes.push((i, re.as_str())),
                    }
                }
                PathMatcher::Template(re) => {
                    match literal_prefix(crate::matcher::full_match_inner(re)) {
                        Some(p) => trie.insert(p.as_bytes(), i),
                        None => always.push(i),
                    }
                }
                PathMatcher::Connect => always.push(i),
            }
        }
        Self {
            exact: exact
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
            trie: trie.finish(),
            regexes: RegexChunks::build(&regexes),
            always: always.into_boxed_slice(),
            linear_only: false,
        }
    }

    /// The index of the first route, in declaration order, whose conditions all hold: the same
    /// answer as [`linear`].
    pub(crate) fn find(
        &self,
        routes: &[CompiledRoute],
        req: &RequestView<'_>,
        random: u64,
    ) -> Option<usize> {
        if self.linear_only {
            return linear(routes, req, random);
        }
        let mut lists = Lists::default();
        lists.push(&self.always);
        let mut regexes = RegexCursor::default();
        if let Some(path) = req.match_path {
            if let Some(l) = self.exact.get(&fold_hash(path.as_bytes())) {
                lists.push(l);
            }
            if !self.trie.walk(path.as_bytes(), &mut lists) {
                return linear(routes, req, random);
            }
            regexes = RegexCursor::new(&self.regexes, path);
        }
        loop {
            let (list, head) = lists.min();
            let from_regexes = match (head, regexes.head()) {
                (Some(l), Some(r)) => r < l,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (None, None) => return None,
            };
            let candidate = if from_regexes {
                regexes.advance()
            } else {
                lists.advance(list)
            };
            let candidate = candidate as usize;
            debug_assert!(candidate < routes.len(), "index entries name routes");
            if routes[candidate].matcher.matches(req, random) {
                return Some(candidate);
            }
        }
    }
}

/// FNV-1a over the ASCII-lowercased bytes: the exact-path key. Collisions only add
/// candidates, which their full matcher then rejects.
fn fold_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Ascending candidate lists being merged, on the stack.
struct Lists<'i> {
    lists: [&'i [u32]; MAX_LISTS],
    len: usize,
}

impl Default for Lists<'_> {
    fn default() -> Self {
        Self {
            lists: [&[]; MAX_LISTS],
            len: 0,
        }
    }
}

impl<'i> Lists<'i> {
    /// Adds a list; false when full.
    fn push(&mut self, list: &'i [u32]) -> bool {
        if list.is_empty() {
            return true;
        }
        match self.lists.get_mut(self.len) {
            Some(slot) => {
                *slot = list;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The list with the smallest head, and that head.
    fn min(&self) -> (usize, Option<u32>) {
        let mut best = (0, None);
        for (i, list) in self.lists[..self.len].iter().enumerate() {
            if let Some(&head) = list.first()
                && best.1.is_none_or(|b| head < b)
            {
                best = (i, Some(head));
            }
        }
        best
    }

    /// Removes and returns the head of list `i` (which [`min`](Self::min) found non-empty).
    fn advance(&mut self, i: usize) -> u32 {
        let (&head, rest) = self.lists[i]
            .split_first()
            .expect("min() returned a non-empty list");
        self.lists[i] = rest;
        head
    }
}

// === impl Trie ===

/// A byte trie over lowercased keys. Node 0 is the root (the empty key).
#[derive(Debug)]
struct Trie {
    nodes: Box<[Node]>,
}

impl Default for Trie {
    fn default() -> Self {
        TrieBuilder::default().finish()
    }
}

#[derive(Debug)]
struct Node {
    /// Child edges, sorted by byte.
    edges: Box<[(u8, u32)]>,
    /// Routes whose key ends here, ascending.
    routes: Box<[u32]>,
}

impl Trie {
    /// Pushes the route lists of every node that `path` (lowercased) walks through, root first.
    /// False when there are more than [`MAX_CHAIN`] of them.
    fn walk<'i>(&'i self, path: &[u8], lists: &mut Lists<'i>) -> bool {
        let mut node = &self.nodes[0];
        let mut chain = 0;
        let mut bytes = path.iter();
        loop {
            if !node.routes.is_empty() {
                chain += 1;
                if chain > MAX_CHAIN || !lists.push(&node.routes) {
                    return false;
                }
            }
            let Some(b) = bytes.next() else {
                return true;
            };
            let b = b.to_ascii_lowercase();
            match node.edges.binary_search_by_key(&b, |&(e, _)| e) {
                Ok(k) => node = &self.nodes[node.edges[k].1 as usize],
                Err(_) => return true,
            }
        }
    }
}

#[derive(Debug)]
struct TrieBuilder {
    edges: Vec<BTreeMap<u8, u32>>,
    routes: Vec<Vec<u32>>,
}

impl Default for TrieBuilder {
    fn default() -> Self {
        Self {
            edges: vec![BTreeMap::new()],
            routes: vec![Vec::new()],
        }
    }
}

impl TrieBuilder {
    /// Adds route `route` under `key` (lowercased); routes are added in ascending order.
    fn insert(&mut self, key: &[u8], route: u32) {
        let mut node = 0usize;
        for b in key {
            let next = u32::try_from(self.edges.len()).expect("fewer trie nodes than key bytes");
            let child = *self.edges[node]
                .entry(b.to_ascii_lowercase())
                .or_insert(next);
            if child == next {
                self.edges.push(BTreeMap::new());
                self.routes.push(Vec::new());
            }
            node = child as usize;
        }
        self.routes[node].push(route);
    }

    fn finish(self) -> Trie {
        let nodes = self
            .edges
            .into_iter()
            .zip(self.routes)
            .map(|(edges, routes)| Node {
                edges: edges.into_iter().collect(),
                routes: routes.into_boxed_slice(),
            })
            .collect();
        Trie { nodes }
    }
}

// === impl RegexChunks ===

/// Prefix-less regex routes, ascending, in chunks of [`REGEX_CHUNK`], each with a [`RegexSet`]
/// of the chunk's full-match patterns (`None` when the set does not build: no filtering).
#[derive(Debug, Default)]
struct RegexChunks {
    routes: Box<[u32]>,
    sets: Box<[Option<RegexSet>]>,
}

impl RegexChunks {
    fn build(regexes: &[(u32, &str)]) -> Self {
        Self {
            routes: regexes.iter().map(|&(i, _)| i).collect(),
            sets: regexes
                .chunks(REGEX_CHUNK)
                .map(|chunk| RegexSet::new(chunk.iter().map(|&(_, p)| p)).ok())
                .collect(),
        }
    }
}

/// Walks [`RegexChunks`] in order, skipping chunks whose set does not match the path.
#[derive(Debug, Default)]
struct RegexCursor<'i> {
    chunks: Option<&'i RegexChunks>,
    path: &'i str,
    pos: usize,
    /// The chunk whose set is known to match.
    admitted: Option<usize>,
}

impl<'i> RegexCursor<'i> {
    fn new(chunks: &'i RegexChunks, path: &'i str) -> Self {
        Self {
            chunks: Some(chunks),
            path,
            pos: 0,
            admitted: None,
        }
    }

    /// The next candidate, evaluating a chunk's set when the cursor enters it.
    fn head(&mut self) -> Option<u32> {
        let chunks = self.chunks?;
        loop {
            let &route = chunks.routes.get(self.pos)?;
            let chunk = self.pos / REGEX_CHUNK;
            if self.admitted == Some(chunk) {
                return Some(route);
            }
            match &chunks.sets[chunk] {
                Some(set) if !set.is_match(self.path) => self.pos = (chunk + 1) * REGEX_CHUNK,
                _ => {
                    self.admitted = Some(chunk);
                    return Some(route);
                }
            }
        }
    }

    /// Removes and returns the head (which [`head`](Self::head) found).
    fn advance(&mut self) -> u32 {
        let route = self.head().expect("head() found a candidate");
        self.pos += 1;
        route
    }
}

// === literal prefixes ===

/// The literal text that every match of `pattern` (anchored at the start) begins with, or
/// `None` when there is none that is easy to prove.
///
/// Conservative: scans ASCII literal characters and escaped punctuation from the start (after an
/// optional `^`) up to the first metacharacter, drops a literal that a `?`, `*` or `{` makes
/// optional, and gives up on any pattern containing `|` (an alternation could bypass the
/// prefix). Flags can only be set by a group, which ends the scan, so they never apply to the
/// prefix.
pub(crate) fn literal_prefix(pattern: &str) -> Option<String> {
    if pattern.contains('|') {
        return None;
    }
    let b = pattern.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'^'));
    let mut prefix = String::new();
    while i < b.len() {
        let (literal, next) = match b[i] {
            b'\\' => match b.get(i + 1) {
                Some(&c) if c.is_ascii_punctuation() && c != b'<' && c != b'>' => (c, i + 2),
                _ => break,
            },
            c if c.is_ascii_graphic() && !b".+*?()|[]{}^$".contains(&c) => (c, i + 1),
            _ => break,
        };
        if matches!(b.get(next), Some(b'?' | b'*' | b'{')) {
            break;
        }
        prefix.push(char::from(literal));
        i = next;
    }
    (!prefix.is_empty()).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/api/v[0-9]+", Some("/api/v")),
            ("^/api/.*", Some("/api/")),
            ("/ab?c", Some("/a")),
            ("/ab*", Some("/a")),
            ("/ab{2}", Some("/a")),
            ("/ab+c", Some("/ab")),
            ("/a|/b", None),
            ("/a(b|c)", None),
            ("(?i)/api", None),
            ("/api(?i)/x", Some("/api")),
            (".*", None),
            ("/a\\.b", Some("/a.b")),
            ("\\.b", Some(".b")),
            ("/a\\.?", Some("/a")),
            ("/a\\-b/(?P<x>[a-z]+)", Some("/a-b/")),
            ("/a\\d", Some("/a")),
            ("/a\\<b", Some("/a")),
            ("/a b", Some("/a")),
            ("/é", Some("/")),
            ("", None),
            ("^", None),
            ("/x$", Some("/x")),
        ];
        for (p, want) in cases {
            assert_eq!(literal_prefix(p).as_deref(), *want, "{p:?}");
        }
    }

    #[test]
    fn trie_walk_collects_nodes_in_path_order() {
        let mut b = TrieBuilder::default();
        b.insert(b"/A", 0);
        b.insert(b"", 1);
        b.insert(b"/a/b", 2);
        b.insert(b"/a", 3);
        b.insert(b"/c", 4);
        let trie = b.finish();
        let mut lists = Lists::default();
        assert!(trie.walk(b"/a/BX", &mut lists));
        let want: [&[u32]; 3] = [&[1], &[0, 3], &[2]];
        assert_eq!(lists.lists[..lists.len], want);
    }

    #[test]
    fn deep_chains_overflow() {
        let mut b = TrieBuilder::default();
        let key = vec![b'a'; MAX_CHAIN + 1];
        for n in 1..=key.len() {
            b.insert(&key[..n], u32::try_from(n).unwrap());
        }
        let trie = b.finish();
        assert!(trie.walk(&key[..MAX_CHAIN], &mut Lists::default()));
        assert!(!trie.walk(&key, &mut Lists::default()));
    }

    #[test]
    fn fold_hash_ignores_ascii_case() {
        assert_eq!(fold_hash(b"/Foo/BAR"), fold_hash(b"/foo/bar"));
        assert_ne!(fold_hash(b"/foo"), fold_hash(b"/foo/"));
    }
}
