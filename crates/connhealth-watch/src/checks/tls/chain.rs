//! What blackbox reports of a verified chain besides its earliest expiry
//! (`probe_ssl_last_chain_expiry_timestamp_seconds`, `probe_ssl_last_chain_info`), read
//! as blackbox 0.23 reads it from Go's `tls.ConnectionState`.
//!
//! The last chain's expiry is Go's `getLastChainExpiry`: over Go's `VerifiedChains`,
//! each the leaf up to a trust anchor, the latest of each chain's earliest `notAfter`.
//! rustls (webpki) gives no chains, so they are built again here, after webpki verified
//! the peer, the way Go's `Certificate.Verify` builds them:
//!
//! - a leaf that is itself one of the trusted certificates (byte for byte: a pinned
//!   CA:TRUE certificate, see `verify_pinned`) is a chain of one;
//! - else a parent of a certificate is a trusted certificate (which ends the chain) or
//!   one the peer sent after its leaf (which must be a CA, and the chain goes on), whose
//!   subject is byte for byte the child's issuer, that is valid now, whose path length
//!   constraint allows the intermediates below it, and that is not already in the chain
//!   (same subject, key and subjectAltName); at most 100 parents are tried, as Go tries
//!   at most 100 signatures.
//!
//! Where Go checks the child's signature with the parent's key, this compares key
//! identifiers instead: a parent whose subjectKeyIdentifier differs from the child's
//! authorityKeyIdentifier (both present) is not one. No signature is checked again:
//! webpki checked those of the path it took. Go's extended key usage filter over whole
//! chains is not applied either. When these rules find no chain (they should not, once
//! webpki found one), the earliest `notAfter` of the certificates the peer sent stands in.
//!
//! The trusted certificates are the CA file's, or the system roots as loaded (their DER
//! is kept beside rustls's `RootCertStore`, which keeps no dates), so the anchor's own
//! `notAfter` counts, as in Go.

use std::fmt::Write as _;

use tokio_rustls::rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;

use super::go_name::go_name_string;
use crate::checks::ChainInfo;

/// Go's zero `time.Time` in Unix seconds: what blackbox reports as the last chain's
/// expiry when nothing was verified (`insecure`).
pub(super) const GO_ZERO_TIME: i64 = -62_135_596_800;

/// How many parents Go tries at most (`maxChainSignatureChecks`).
const MAX_PARENTS_TRIED: u32 = 100;

/// What chain building needs of one certificate, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChainCert {
    subject: Box<[u8]>,
    issuer: Box<[u8]>,
    public_key: Box<[u8]>,
    subject_alt_name: Option<Box<[u8]>>,
    subject_key_id: Option<Box<[u8]>>,
    authority_key_id: Option<Box<[u8]>>,
    is_ca: bool,
    max_path_len: Option<u32>,
    not_before: i64,
    /// `notAfter`, in Unix seconds.
    not_after: i64,
}

impl ChainCert {
    pub(super) fn of(cert: &X509Certificate<'_>) -> ChainCert {
        let boxed = |bytes: &[u8]| Box::<[u8]>::from(bytes);
        let mut subject_key_id = None;
        let mut authority_key_id = None;
        let mut subject_alt_name = None;
        for extension in cert.extensions() {
            if extension.oid == OID_X509_EXT_SUBJECT_ALT_NAME {
                subject_alt_name = Some(boxed(extension.value));
            }
            match extension.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(boxed(id.0)),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    authority_key_id = aki.key_identifier.as_ref().map(|id| boxed(id.0));
                }
                _ => {}
            }
        }
        let max_path_len = cert
            .basic_constraints()
            .ok()
            .flatten()
            .and_then(|constraints| constraints.value.path_len_constraint);
        ChainCert {
            subject: boxed(cert.subject().as_raw()),
            issuer: boxed(cert.issuer().as_raw()),
            public_key: boxed(cert.public_key().raw),
            subject_alt_name,
            subject_key_id,
            authority_key_id,
            is_ca: cert.is_ca(),
            max_path_len,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        }
    }

    /// Go's `alreadyInChain`: the same subject, key and subjectAltName.
    fn same_as(&self, other: &ChainCert) -> bool {
        self.subject == other.subject
            && self.public_key == other.public_key
            && self.subject_alt_name == other.subject_alt_name
    }
}

/// A trusted certificate: its DER (to know a leaf that is one) and what chain building
/// reads of it.
#[derive(Debug, Clone)]
pub(super) struct Anchor {
    pub(super) der: CertificateDer<'static>,
    pub(super) cert: ChainCert,
}

impl Anchor {
    /// `der` as an anchor, when it parses.
    pub(super) fn of(der: &CertificateDer<'_>) -> Option<Anchor> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        Some(Anchor {
            der: der.clone().into_owned(),
            cert: ChainCert::of(&cert),
        })
    }

    /// Whether it has basicConstraints CA:TRUE.
    pub(super) fn is_ca(&self) -> bool {
        self.cert.is_ca
    }
}

/// The leaf's part of [`ChainInfo`], and `last_chain_expiry` as given.
pub(super) fn chain_info(
    leaf_der: &CertificateDer<'_>,
    leaf: &X509Certificate<'_>,
    last_chain_expiry: i64,
) -> ChainInfo {
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf_der.as_ref());
    let mut fingerprint_sha256 = String::with_capacity(64);
    for byte in digest.as_ref() {
        let _ = write!(fingerprint_sha256, "{byte:02x}");
    }
    ChainInfo {
        last_chain_expiry,
        fingerprint_sha256,
        subject: go_name_string(leaf.subject()),
        issuer: go_name_string(leaf.issuer()),
        subject_alternative: dns_names(leaf).join(","),
    }
}

/// The leaf's DNS names, as Go's `cert.DNSNames`: every dNSName of its subjectAltName,
/// in order.
fn dns_names<'a>(cert: &X509Certificate<'a>) -> Vec<&'a str> {
    let mut names = Vec::new();
    for extension in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
            for name in &san.general_names {
                if let GeneralName::DNSName(dns) = name {
                    names.push(*dns);
                }
            }
        }
    }
    names
}

/// Go's `getLastChainExpiry` over the chains from `leaf` through `intermediates` to
/// `anchors` valid at `now` (Unix seconds), built as the module says; `None` when there
/// is none.
pub(super) fn last_chain_expiry(
    leaf_der: &CertificateDer<'_>,
    leaf: &ChainCert,
    intermediates: &[ChainCert],
    anchors: &[Anchor],
    now: i64,
) -> Option<i64> {
    if anchors.iter().any(|anchor| anchor.der == *leaf_der) {
        return Some(leaf.not_after);
    }
    let mut search = Search {
        intermediates,
        anchors,
        now,
        tries_left: MAX_PARENTS_TRIED,
        latest: None,
    };
    let mut chain = vec![leaf];
    search.extend(&mut chain, leaf.not_after);
    search.latest
}

struct Search<'a> {
    intermediates: &'a [ChainCert],
    anchors: &'a [Anchor],
    now: i64,
    tries_left: u32,
    /// The latest of the chains' earliest `notAfter` so far.
    latest: Option<i64>,
}

impl<'a> Search<'a> {
    /// Every chain that continues `chain`, whose earliest `notAfter` so far is `earliest`.
    fn extend(&mut self, chain: &mut Vec<&'a ChainCert>, earliest: i64) {
        let anchors = self.anchors;
        for anchor in anchors {
            if self.is_parent(chain, &anchor.cert) {
                let expiry = earliest.min(anchor.cert.not_after);
                self.latest = Some(self.latest.map_or(expiry, |latest| latest.max(expiry)));
            }
        }
        let intermediates = self.intermediates;
        for candidate in intermediates {
            if self.is_parent(chain, candidate) && candidate.is_ca {
                chain.push(candidate);
                self.extend(chain, earliest.min(candidate.not_after));
                chain.pop();
            }
        }
    }

    /// Whether `candidate` may follow the last certificate of `chain` (Go's
    /// `findPotentialParents` and `isValid`, with key identifiers for the signature).
    fn is_parent(&mut self, chain: &[&ChainCert], candidate: &ChainCert) -> bool {
        let Some(child) = chain.last() else {
            return false;
        };
        if candidate.subject != child.issuer || chain.iter().any(|c| c.same_as(candidate)) {
            return false;
        }
        if self.tries_left == 0 {
            return false;
        }
        self.tries_left -= 1;
        if let (Some(subject_key_id), Some(authority_key_id)) =
            (&candidate.subject_key_id, &child.authority_key_id)
        {
            if subject_key_id != authority_key_id {
                return false;
            }
        }
        if self.now < candidate.not_before || self.now > candidate.not_after {
            return false;
        }
        let intermediates_below = chain.len() - 1;
        match candidate.max_path_len {
            Some(max) => intermediates_below <= max as usize,
            None => true,
        }
    }
}
