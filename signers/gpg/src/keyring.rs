//! OpenPGP keyrings as GnuPG keeps them: parsing (binary or ASCII-armored, legacy `trust`
//! packets tolerated), certificates grouped from packets, key state now (valid, expired,
//! revoked) from verified self-signatures, merging for import, and serialization of public
//! keyrings.
//!
//! Certificates are grouped by hand from rPGP's packet stream rather than with rPGP's
//! transferable-key parser, so that one odd packet (a trust packet of `secring.gpg`, an
//! unknown subpacket, a key of an unsupported algorithm) costs that packet, not the keyring.

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pgp::packet::{
    Packet, PacketParser, PublicKey, PublicSubkey, SecretKey, SecretSubkey, Signature,
    SignatureType, UserAttribute, UserId,
};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Tag};

/// Most packets read from one input (a bound against hostile inputs).
const MAX_PACKETS: usize = 200_000;

/// Run `f`, turning a panic inside a dependency into `None`: hostile input must never take
/// the process down.
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// Upper-case hex.
pub(crate) fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// The binary packets of `data`: ASCII-armored blocks are dearmored (several may follow each
/// other, as `cat key1.asc key2.asc` gives), anything else is taken as binary.
pub fn dearmor(data: &[u8]) -> Vec<Vec<u8>> {
    const BEGIN: &[u8] = b"-----BEGIN PGP";
    let Some(first) = find(data, BEGIN) else {
        return vec![data.to_vec()];
    };
    let mut out = Vec::new();
    let mut rest = &data[first..];
    while let Some(start) = find(rest, BEGIN) {
        rest = &rest[start..];
        let end = find(rest, b"-----END PGP")
            .and_then(|e| find(&rest[e + 5..], b"-----").map(|t| e + 5 + t + 5))
            .unwrap_or(rest.len());
        let block = &rest[..end];
        let decoded = guard(|| {
            let mut d = pgp::armor::Dearmor::new(block);
            let mut v = Vec::new();
            d.read_to_end(&mut v).map(|_| v)
        });
        if let Some(Ok(v)) = decoded {
            out.push(v);
        }
        rest = &rest[end..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every packet rPGP can parse from `data` (binary), skipping packets it cannot.
pub fn packets(data: &[u8]) -> Vec<Packet> {
    guard(|| {
        let mut out = Vec::new();
        for (n, p) in PacketParser::new(data).enumerate() {
            if n >= MAX_PACKETS {
                break;
            }
            if let Ok(p) = p {
                out.push(p);
            }
        }
        out
    })
    .unwrap_or_default()
}

/// A primary key or subkey, public half, with its secret half when read from a secret
/// keyring.
#[derive(Clone, Debug)]
pub enum KeyPacket {
    /// Public key material only.
    Public(Box<PublicKey>),
    /// Secret key (its public half is inside).
    Secret(Box<SecretKey>),
}

impl KeyPacket {
    /// The public half.
    pub fn public(&self) -> &PublicKey {
        match self {
            KeyPacket::Public(p) => p.as_ref(),
            KeyPacket::Secret(s) => s.public_key(),
        }
    }
}

/// A subkey, public or secret.
#[derive(Clone, Debug)]
pub enum SubkeyPacket {
    /// Public key material only.
    Public(Box<PublicSubkey>),
    /// Secret key (its public half is inside).
    Secret(Box<SecretSubkey>),
}

impl SubkeyPacket {
    /// The public half.
    pub fn public(&self) -> &PublicSubkey {
        match self {
            SubkeyPacket::Public(p) => p.as_ref(),
            SubkeyPacket::Secret(s) => s.public_key(),
        }
    }
}

/// A user ID with the signatures on it.
#[derive(Clone, Debug)]
pub struct UserComponent {
    /// The user ID packet.
    pub id: UserId,
    /// Certifications and revocations.
    pub sigs: Vec<Signature>,
}

/// A user attribute (photo ID) with its signatures, kept for round trips.
#[derive(Clone, Debug)]
pub struct AttrComponent {
    /// The attribute packet.
    pub attr: UserAttribute,
    /// Its signatures.
    pub sigs: Vec<Signature>,
}

/// A subkey with its binding and revocation signatures.
#[derive(Clone, Debug)]
pub struct SubkeyComponent {
    /// The subkey.
    pub key: SubkeyPacket,
    /// Bindings and revocations.
    pub sigs: Vec<Signature>,
}

/// A certificate (transferable key).
#[derive(Clone, Debug)]
pub struct Cert {
    /// The primary key.
    pub primary: KeyPacket,
    /// Direct-key signatures and key revocations.
    pub sigs: Vec<Signature>,
    /// User IDs.
    pub users: Vec<UserComponent>,
    /// User attributes.
    pub attrs: Vec<AttrComponent>,
    /// Subkeys.
    pub subkeys: Vec<SubkeyComponent>,
}

enum Slot {
    Key,
    User,
    Attr,
    Subkey,
}

/// Group packets into certificates. Packets before the first key, and signatures that
/// belong nowhere, are dropped.
pub fn certs_from_packets(pkts: Vec<Packet>) -> Vec<Cert> {
    certs_and_orphans(pkts).0
}

/// Group packets into certificates; also return key revocations that came without a key
/// (a revocation certificate on its own, as `gpg --gen-revoke` writes it).
pub fn certs_and_orphans(pkts: Vec<Packet>) -> (Vec<Cert>, Vec<Signature>) {
    let mut orphans = Vec::new();
    let mut out: Vec<Cert> = Vec::new();
    let mut slot = Slot::Key;
    for p in pkts {
        match p {
            Packet::PublicKey(k) => {
                out.push(Cert::new(KeyPacket::Public(Box::new(k))));
                slot = Slot::Key;
            }
            Packet::SecretKey(k) => {
                out.push(Cert::new(KeyPacket::Secret(Box::new(k))));
                slot = Slot::Key;
            }
            Packet::UserId(u) => {
                if let Some(c) = out.last_mut() {
                    c.users.push(UserComponent {
                        id: u,
                        sigs: Vec::new(),
                    });
                    slot = Slot::User;
                }
            }
            Packet::UserAttribute(a) => {
                if let Some(c) = out.last_mut() {
                    c.attrs.push(AttrComponent {
                        attr: a,
                        sigs: Vec::new(),
                    });
                    slot = Slot::Attr;
                }
            }
            Packet::PublicSubkey(k) => {
                if let Some(c) = out.last_mut() {
                    c.subkeys.push(SubkeyComponent {
                        key: SubkeyPacket::Public(Box::new(k)),
                        sigs: Vec::new(),
                    });
                    slot = Slot::Subkey;
                }
            }
            Packet::SecretSubkey(k) => {
                if let Some(c) = out.last_mut() {
                    c.subkeys.push(SubkeyComponent {
                        key: SubkeyPacket::Secret(Box::new(k)),
                        sigs: Vec::new(),
                    });
                    slot = Slot::Subkey;
                }
            }
            Packet::Signature(s) => {
                let Some(c) = out.last_mut() else {
                    if s.typ() == Some(SignatureType::KeyRevocation) {
                        orphans.push(s);
                    }
                    continue;
                };
                // Key-level signatures belong to the primary key wherever they appear.
                let key_level = matches!(
                    s.typ(),
                    Some(SignatureType::KeyRevocation) | Some(SignatureType::Key)
                );
                let slot_now = if key_level { &Slot::Key } else { &slot };
                let target = match slot_now {
                    Slot::Key => Some(&mut c.sigs),
                    Slot::User => c.users.last_mut().map(|u| &mut u.sigs),
                    Slot::Attr => c.attrs.last_mut().map(|a| &mut a.sigs),
                    Slot::Subkey => c.subkeys.last_mut().map(|k| &mut k.sigs),
                };
                if let Some(t) = target {
                    t.push(s);
                }
            }
            // Trust, marker and padding packets carry nothing for us.
            _ => {}
        }
    }
    (out, orphans)
}

/// Attach lone key revocations to the certificates whose primary key made them.
pub fn attach_orphans(certs: &mut [Cert], orphans: &[Signature]) {
    for s in orphans {
        for c in certs.iter_mut() {
            let pk = c.primary.public();
            if guard(|| s.verify_key(pk).is_ok()).unwrap_or(false) {
                merge_sigs(&mut c.sigs, std::slice::from_ref(s));
            }
        }
    }
}

/// Parse a keyring, returning lone key revocations too.
pub fn parse_keyring_with_orphans(data: &[u8]) -> (Vec<Cert>, Vec<Signature>) {
    let mut certs = Vec::new();
    let mut orphans = Vec::new();
    for b in dearmor(data) {
        let (c, o) = certs_and_orphans(packets(&b));
        certs.extend(c);
        orphans.extend(o);
    }
    attach_orphans(&mut certs, &orphans);
    (certs, orphans)
}

/// Parse a keyring (binary or armored, any number of keys).
pub fn parse_keyring(data: &[u8]) -> Vec<Cert> {
    dearmor(data)
        .into_iter()
        .flat_map(|b| certs_from_packets(packets(&b)))
        .collect()
}

fn sig_bytes(s: &Signature) -> Vec<u8> {
    guard(|| s.to_bytes().unwrap_or_default()).unwrap_or_default()
}

fn created(s: &Signature) -> i64 {
    s.created().map(|t| i64::from(t.as_secs())).unwrap_or(0)
}

/// A user ID split as GPGME does: `Name (Comment) <email>`.
pub fn split_uid(uid: &str) -> (String, String) {
    let (rest, email) = match (uid.rfind('<'), uid.rfind('>')) {
        (Some(a), Some(b)) if a < b => (uid[..a].trim_end(), uid[a + 1..b].to_string()),
        _ => (uid, String::new()),
    };
    let name = match rest.find(" (") {
        Some(i) if rest.ends_with(')') => &rest[..i],
        _ => rest,
    };
    (name.trim().to_string(), email)
}

/// State of a key or subkey now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyState {
    /// Fingerprint, upper-case hex.
    pub fingerprint: String,
    /// Creation time.
    pub created: i64,
    /// Expiry time, 0 for none.
    pub expires: i64,
    /// Revoked by a verified revocation signature.
    pub revoked: bool,
    /// Bound by at least one verified self-signature (subkeys) / certified (primary).
    pub bound: bool,
    /// May sign data (key flags of the newest binding; true when no flags are given).
    pub can_sign: bool,
}

impl KeyState {
    /// Expired at `now`.
    pub fn expired(&self, now: i64) -> bool {
        self.expires > 0 && self.expires <= now
    }
}

fn expiry_from(created_at: i64, sig: &Signature) -> i64 {
    match sig.key_expiration_time() {
        Some(d) if d.as_secs() > 0 => created_at + i64::from(d.as_secs()),
        _ => 0,
    }
}

impl Cert {
    fn new(primary: KeyPacket) -> Self {
        Cert {
            primary,
            sigs: Vec::new(),
            users: Vec::new(),
            attrs: Vec::new(),
            subkeys: Vec::new(),
        }
    }

    /// The primary key fingerprint.
    pub fn fingerprint(&self) -> String {
        hex_upper(self.primary.public().fingerprint().as_bytes())
    }

    /// Valid self-certifications of user `u` (and whether a certification revocation newer
    /// than them applies).
    fn user_state<'a>(&'a self, u: &'a UserComponent) -> (Option<&'a Signature>, bool) {
        let pk = self.primary.public();
        let mut newest: Option<&Signature> = None;
        let mut newest_rev: Option<&Signature> = None;
        for s in &u.sigs {
            let ok =
                guard(|| s.verify_certification(pk, Tag::UserId, &u.id).is_ok()).unwrap_or(false);
            if !ok {
                continue;
            }
            match s.typ() {
                Some(SignatureType::CertRevocation)
                    if newest_rev.is_none_or(|n| created(s) >= created(n)) =>
                {
                    newest_rev = Some(s);
                }
                Some(SignatureType::CertRevocation) => {}
                Some(_)
                    if s.is_certification() && newest.is_none_or(|n| created(s) >= created(n)) =>
                {
                    newest = Some(s);
                }
                _ => {}
            }
        }
        let revoked = match (newest, newest_rev) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(c), Some(r)) => created(r) >= created(c),
        };
        (newest, revoked)
    }

    /// Primary key state now: revoked by a verified key revocation; expiry from the newest
    /// verified self-signature (user certification or direct-key signature).
    pub fn primary_state(&self) -> KeyState {
        let pk = self.primary.public();
        let created_at = i64::from(pk.created_at().as_secs());
        let mut revoked = false;
        let mut newest: Option<&Signature> = None;
        for s in &self.sigs {
            let ok = guard(|| s.verify_key(pk).is_ok()).unwrap_or(false);
            if !ok {
                continue;
            }
            match s.typ() {
                Some(SignatureType::KeyRevocation) => revoked = true,
                Some(SignatureType::Key) if newest.is_none_or(|n| created(s) >= created(n)) => {
                    newest = Some(s);
                }
                _ => {}
            }
        }
        for u in &self.users {
            let (c, _) = self.user_state(u);
            if let Some(c) = c
                && newest.is_none_or(|n| created(c) >= created(n))
            {
                newest = Some(c);
            }
        }
        KeyState {
            fingerprint: self.fingerprint(),
            created: created_at,
            expires: newest.map(|s| expiry_from(created_at, s)).unwrap_or(0),
            revoked,
            bound: newest.is_some(),
            can_sign: newest
                .map(|s| {
                    let f = s.key_flags();
                    f.sign() || !any_flags(s)
                })
                .unwrap_or(true),
        }
    }

    /// State of subkey `k` now.
    pub fn subkey_state(&self, k: &SubkeyComponent) -> KeyState {
        let pk = self.primary.public();
        let sub = k.key.public();
        let created_at = i64::from(sub.created_at().as_secs());
        let mut revoked = false;
        let mut newest: Option<&Signature> = None;
        for s in &k.sigs {
            let ok = guard(|| s.verify_subkey_binding(pk, sub).is_ok()).unwrap_or(false);
            if !ok {
                continue;
            }
            match s.typ() {
                Some(SignatureType::SubkeyRevocation) => revoked = true,
                Some(SignatureType::SubkeyBinding)
                    if newest.is_none_or(|n| created(s) >= created(n)) =>
                {
                    newest = Some(s);
                }
                _ => {}
            }
        }
        KeyState {
            fingerprint: hex_upper(sub.fingerprint().as_bytes()),
            created: created_at,
            expires: newest.map(|s| expiry_from(created_at, s)).unwrap_or(0),
            revoked,
            bound: newest.is_some(),
            can_sign: newest
                .map(|s| s.key_flags().sign() || !any_flags(s))
                .unwrap_or(false),
        }
    }

    /// The user ID GPGME reports first: the one flagged primary, else the first.
    pub fn primary_uid(&self) -> Option<String> {
        let mut best: Option<(&UserComponent, bool)> = None;
        for u in &self.users {
            let (c, _) = self.user_state(u);
            let primary = c.is_some_and(|s| s.is_primary());
            match best {
                None => best = Some((u, primary)),
                Some((_, false)) if primary => best = Some((u, primary)),
                _ => {}
            }
        }
        best.map(|(u, _)| String::from_utf8_lossy(u.id.id()).into_owned())
    }

    /// User IDs with their revocation state, in keyring order.
    pub fn uids(&self) -> Vec<(String, bool)> {
        self.users
            .iter()
            .map(|u| {
                (
                    String::from_utf8_lossy(u.id.id()).into_owned(),
                    self.user_state(u).1,
                )
            })
            .collect()
    }

    /// Does `key_id` (hex: 8 or 16 digits of a key ID, or a fingerprint; `0x` allowed)
    /// name this certificate's primary key or one of its subkeys?
    pub fn matches(&self, key_id: &str) -> bool {
        let want = normalize_id(key_id);
        if want.is_empty() {
            return false;
        }
        let mut fprs = vec![self.fingerprint()];
        for k in &self.subkeys {
            fprs.push(hex_upper(k.key.public().fingerprint().as_bytes()));
        }
        fprs.iter().any(|f| f.ends_with(&want))
    }

    /// The public packets, serialized (secret halves dropped).
    pub fn to_public_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let pk = self.primary.public();
        write_packet(&mut out, Tag::PublicKey, &body(pk));
        for s in &self.sigs {
            write_packet(&mut out, Tag::Signature, &sig_bytes(s));
        }
        for u in &self.users {
            write_packet(&mut out, Tag::UserId, &body(&u.id));
            for s in &u.sigs {
                write_packet(&mut out, Tag::Signature, &sig_bytes(s));
            }
        }
        for a in &self.attrs {
            write_packet(&mut out, Tag::UserAttribute, &body(&a.attr));
            for s in &a.sigs {
                write_packet(&mut out, Tag::Signature, &sig_bytes(s));
            }
        }
        for k in &self.subkeys {
            write_packet(&mut out, Tag::PublicSubkey, &body(k.key.public()));
            for s in &k.sigs {
                write_packet(&mut out, Tag::Signature, &sig_bytes(s));
            }
        }
        out
    }

    /// Merge another copy of this certificate: new signatures, user IDs, attributes and
    /// subkeys are added (as `gpg --import` merges an updated key). True if anything changed.
    pub fn merge(&mut self, other: &Cert) -> bool {
        let mut changed = merge_sigs(&mut self.sigs, &other.sigs);
        for u in &other.users {
            match self.users.iter_mut().find(|x| x.id.id() == u.id.id()) {
                Some(mine) => changed |= merge_sigs(&mut mine.sigs, &u.sigs),
                None => {
                    self.users.push(u.clone());
                    changed = true;
                }
            }
        }
        for a in &other.attrs {
            let ab = body(&a.attr);
            match self.attrs.iter_mut().find(|x| body(&x.attr) == ab) {
                Some(mine) => changed |= merge_sigs(&mut mine.sigs, &a.sigs),
                None => {
                    self.attrs.push(a.clone());
                    changed = true;
                }
            }
        }
        for k in &other.subkeys {
            let f = k.key.public().fingerprint();
            match self
                .subkeys
                .iter_mut()
                .find(|x| x.key.public().fingerprint() == f)
            {
                Some(mine) => changed |= merge_sigs(&mut mine.sigs, &k.sigs),
                None => {
                    self.subkeys.push(k.clone());
                    changed = true;
                }
            }
        }
        changed
    }
}

fn any_flags(s: &Signature) -> bool {
    s.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, pgp::packet::SubpacketData::KeyFlags(_)))
    })
}

fn merge_sigs(mine: &mut Vec<Signature>, theirs: &[Signature]) -> bool {
    let have: Vec<Vec<u8>> = mine.iter().map(sig_bytes).collect();
    let mut changed = false;
    for s in theirs {
        let b = sig_bytes(s);
        if !b.is_empty() && !have.contains(&b) {
            mine.push(s.clone());
            changed = true;
        }
    }
    changed
}

fn body(p: &impl Serialize) -> Vec<u8> {
    guard(|| p.to_bytes().unwrap_or_default()).unwrap_or_default()
}

/// Write one packet with a new-format header.
fn write_packet(out: &mut Vec<u8>, tag: Tag, body: &[u8]) {
    if body.is_empty() {
        return;
    }
    out.push(0xC0 | u8::from(tag));
    let n = body.len();
    if n < 192 {
        out.push(n as u8);
    } else if n < 8384 {
        let m = n - 192;
        out.push(((m >> 8) + 192) as u8);
        out.push((m & 0xff) as u8);
    } else {
        out.push(0xff);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(body);
}

/// Key IDs compared as GnuPG does: hex, upper-case, without `0x`, a trailing `!` ignored.
pub fn normalize_id(key_id: &str) -> String {
    let k = key_id.trim().trim_end_matches('!');
    let k = k
        .strip_prefix("0x")
        .or_else(|| k.strip_prefix("0X"))
        .unwrap_or(k);
    if k.is_empty() || !k.bytes().all(|c| c.is_ascii_hexdigit()) {
        return String::new();
    }
    k.to_ascii_uppercase()
}

/// Serialize certificates as a binary public keyring.
pub fn to_keyring(certs: &[Cert]) -> Vec<u8> {
    certs.iter().flat_map(Cert::to_public_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_split_like_gpgme() {
        assert_eq!(
            split_uid("Ostree Tester <test@test.com>"),
            ("Ostree Tester".into(), "test@test.com".into())
        );
        assert_eq!(
            split_uid("Test Key 1"),
            ("Test Key 1".into(), String::new())
        );
        assert_eq!(
            split_uid("A B (comment) <a@b>"),
            ("A B".into(), "a@b".into())
        );
    }

    #[test]
    fn ids() {
        assert_eq!(normalize_id("0x472cdafa"), "472CDAFA");
        assert_eq!(normalize_id("nothex"), "");
        assert_eq!(normalize_id("ABC!"), "ABC");
    }

    #[test]
    fn garbage_is_no_keys() {
        assert!(parse_keyring(b"").is_empty());
        assert!(parse_keyring(b"borkborkbork").is_empty());
        assert!(parse_keyring(&[0x99, 0xff, 0xff, 0xff]).is_empty());
        assert!(parse_keyring(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nzzzz\n").is_empty());
    }
}
