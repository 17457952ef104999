//! A certificate's subject or issuer written as Go's `pkix.Name.String()` writes it, which
//! is what blackbox puts in `probe_ssl_last_chain_info{subject,issuer}`.
//!
//! Go does not write the name's RDNs as the certificate has them: crypto/x509 parses a
//! name into a `pkix.Name` (its multi-valued RDNs flattened into a list of attributes), and
//! `Name.String()` rebuilds an RDN sequence from that:
//!
//! 1. every attribute that is not one of the nine Go knows (C, ST, L, STREET, POSTALCODE,
//!    O, OU, CN, SERIALNUMBER), each an RDN of its own, in the name's order;
//! 2. then one RDN each for C, ST, L, STREET, POSTALCODE, O and OU, holding all of that
//!    attribute's values in the name's order (so two OUs are one RDN, `OU=a+OU=b`);
//! 3. then CN and SERIALNUMBER, each the name's last value of it, left out when empty.
//!
//! `RDNSequence.String()` writes that sequence in reverse, RDNs joined by `,` and the
//! values of one RDN by `+`: `CN=leaf,O=Example,C=US` whatever the certificate's order.
//! A known attribute is `SHORT=value` with RFC 4514's escapes as Go makes them (a
//! backslash before `,+"\<>;`, before a leading or trailing space, before a leading
//! `#`); any other is `dotted.oid=#hex`, the hex of the DER Go's `asn1.Marshal` writes
//! for the value's string: a PrintableString when every character is one (`*` and `&`
//! not), else a UTF8String.
//!
//! Values are read as Go's parser reads them: PrintableString, UTF8String, IA5String and
//! NumericString as they are, BMPString as UTF-16 (a trailing NUL dropped), T61String as
//! Latin-1 (as Go 1.21 and later; older Go took its bytes raw). Go refuses a certificate
//! with any other string type outright; here its bytes are read as UTF-8, lossily.

use std::fmt::Write as _;

use x509_parser::der_parser::asn1_rs::{Any, Tag};
use x509_parser::x509::X509Name;

/// The nine attributes Go names, by OID, in the order `ToRDNSequence` writes them
/// (SERIALNUMBER and CN last, single-valued).
const KNOWN: [(&str, &str); 9] = [
    ("2.5.4.6", "C"),
    ("2.5.4.8", "ST"),
    ("2.5.4.7", "L"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.17", "POSTALCODE"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
];

/// How many of [`KNOWN`] are multi-valued (all but CN and SERIALNUMBER).
const MULTI_VALUED: usize = 7;

/// `name` as Go's `pkix.Name.String()` writes it.
pub(super) fn go_name_string(name: &X509Name<'_>) -> String {
    let attributes: Vec<(String, String)> = name
        .iter_attributes()
        .map(|atv| (atv.attr_type().to_id_string(), go_value(atv.attr_value())))
        .collect();
    let borrowed: Vec<(&str, &str)> = attributes
        .iter()
        .map(|(oid, value)| (oid.as_str(), value.as_str()))
        .collect();
    format_go_name(&borrowed)
}

/// Go's `Name.String()` over a parsed name's attributes (dotted OID, value), in the
/// name's order, its RDNs flattened.
pub(super) fn format_go_name(attributes: &[(&str, &str)]) -> String {
    let short = |oid: &str| KNOWN.iter().find(|(known, _)| *known == oid).map(|k| k.1);
    // The RDN sequence `Name.String()` builds, each RDN a list of (OID, value).
    let mut rdns: Vec<Vec<(&str, &str)>> = attributes
        .iter()
        .filter(|(oid, _)| short(oid).is_none())
        .map(|&attribute| vec![attribute])
        .collect();
    for (i, (oid, _)) in KNOWN.iter().enumerate() {
        let mut values = attributes.iter().filter(|(known, _)| known == oid);
        let rdn: Vec<(&str, &str)> = if i < MULTI_VALUED {
            values.copied().collect()
        } else {
            // `n.CommonName = value` for each: the last one stays; an empty one is left out.
            values
                .next_back()
                .filter(|(_, value)| !value.is_empty())
                .copied()
                .into_iter()
                .collect()
        };
        if !rdn.is_empty() {
            rdns.push(rdn);
        }
    }

    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, (oid, value)) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match short(oid) {
                Some(name) => {
                    out.push_str(name);
                    out.push('=');
                    escape_into(&mut out, value);
                }
                None => {
                    out.push_str(oid);
                    out.push_str("=#");
                    for byte in marshal_string(value) {
                        let _ = write!(out, "{byte:02x}");
                    }
                }
            }
        }
    }
    out
}

/// Go's escaping in `RDNSequence.String()`.
fn escape_into(out: &mut String, value: &str) {
    let last = value.len().saturating_sub(1);
    for (k, c) in value.char_indices() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k == last,
            '#' => k == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The DER of `value` as Go's `asn1.Marshal` writes a string: a PrintableString when
/// every byte is in its set (Go rejects `*` and `&` here), else a UTF8String.
fn marshal_string(value: &str) -> Vec<u8> {
    let printable = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b));
    let tag = if printable { 0x13 } else { 0x0c };
    let mut der = vec![tag];
    let len = value.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        der.push(0x80 | (bytes.len() - skip) as u8);
        der.extend_from_slice(&bytes[skip..]);
    }
    der.extend_from_slice(value.as_bytes());
    der
}

/// An attribute's value as Go's `parseASN1String` reads it (see the module's notes).
fn go_value(value: &Any<'_>) -> String {
    let bytes = value.as_bytes();
    match value.header.tag() {
        Tag::T61String => bytes.iter().map(|&b| char::from(b)).collect(),
        Tag::BmpString => {
            let bytes = bytes.strip_suffix(&[0, 0]).unwrap_or(bytes);
            let units = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    const C: &str = "2.5.4.6";
    const O: &str = "2.5.4.10";
    const OU: &str = "2.5.4.11";
    const CN: &str = "2.5.4.3";
    const L: &str = "2.5.4.7";
    const ST: &str = "2.5.4.8";
    const STREET: &str = "2.5.4.9";
    const POSTALCODE: &str = "2.5.4.17";
    const SERIALNUMBER: &str = "2.5.4.5";

    #[test]
    fn rdns_come_out_in_reverse_of_the_certificates_order() {
        // A Let's Encrypt issuer as the certificate has it: C, O, CN.
        let name = [(C, "US"), (O, "Let's Encrypt"), (CN, "R3")];
        assert_eq!(format_go_name(&name), "CN=R3,O=Let's Encrypt,C=US");
    }

    #[test]
    fn known_attributes_come_out_in_gos_order_whatever_the_certificates() {
        // Go's TestPKIXNameString: every known attribute.
        let name = [
            (CN, "Steve Kille"),
            (O, "Isode Limited"),
            (OU, "RFCs"),
            (L, "Richmond"),
            (ST, "Surrey"),
            (STREET, "The Square"),
            (POSTALCODE, "TW9 1DT"),
            (SERIALNUMBER, "RFC 2253"),
            (C, "GB"),
        ];
        assert_eq!(
            format_go_name(&name),
            "SERIALNUMBER=RFC 2253,CN=Steve Kille,OU=RFCs,O=Isode Limited,\
             POSTALCODE=TW9 1DT,STREET=The Square,L=Richmond,ST=Surrey,C=GB"
        );
        // CN first in the certificate still comes out first.
        assert_eq!(
            format_go_name(&[(CN, "leaf"), (O, "Example")]),
            "CN=leaf,O=Example"
        );
    }

    #[test]
    fn special_characters_are_escaped_as_go_escapes_them() {
        // Go's TestPKIXNameString: a leading #, a comma, a newline (left alone), a >, a
        // quote, a trailing space.
        let name = [(C, "US"), (O, "#Google, Inc. \n-> 'Alphabet\" ")];
        assert_eq!(
            format_go_name(&name),
            "O=\\#Google\\, Inc. \n-\\> 'Alphabet\\\"\\ ,C=US"
        );
        assert_eq!(
            format_go_name(&[(CN, " a+b;c<d\\e # ")]),
            "CN=\\ a\\+b\\;c\\<d\\\\e #\\ "
        );
    }

    #[test]
    fn values_of_one_attribute_are_one_rdn_joined_by_plus() {
        let name = [(OU, "a"), (O, "Example"), (OU, "b")];
        assert_eq!(format_go_name(&name), "OU=a+OU=b,O=Example");
    }

    #[test]
    fn the_last_common_name_stays_and_an_empty_one_goes() {
        assert_eq!(format_go_name(&[(CN, "first"), (CN, "last")]), "CN=last");
        assert_eq!(format_go_name(&[(CN, ""), (O, "")]), "O=");
    }

    #[test]
    fn other_attributes_are_hex_der_at_the_end_in_reverse() {
        // Go's TestPKIXNameString: a PrintableString-able value.
        let name = [(L, "Gophertown"), ("1.2.3.4.5", "golang.org")];
        assert_eq!(
            format_go_name(&name),
            "L=Gophertown,1.2.3.4.5=#130a676f6c616e672e6f7267"
        );
        // An email address has an @: a UTF8String, whatever the certificate had (IA5).
        let name = [
            ("1.2.840.113549.1.9.1", "a@b"),
            (CN, "x"),
            ("0.9.2342.19200300.100.1.25", "com"),
        ];
        assert_eq!(
            format_go_name(&name),
            "CN=x,0.9.2342.19200300.100.1.25=#1303636f6d,1.2.840.113549.1.9.1=#0c03614062"
        );
        // `*` and `&` are not printable for Go's marshaller, and no value escaping.
        assert_eq!(
            format_go_name(&[("2.5.4.12", "*,&")]),
            "2.5.4.12=#0c032a2c26"
        );
    }

    #[test]
    fn a_long_value_has_a_long_form_length() {
        let value = "x".repeat(200);
        let der = marshal_string(&value);
        assert_eq!(&der[..3], &[0x13, 0x81, 200]);
        assert_eq!(der.len(), 203);
    }

    /// One attribute: its OID's DER body, its value's tag, its value.
    type Attribute<'a> = (&'a [u8], u8, &'a [u8]);

    /// DER of a Name: RDNs, each a list of attributes.
    fn name_der(rdns: &[&[Attribute<'_>]]) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            assert!(body.len() < 0x80);
            let mut out = vec![tag, body.len() as u8];
            out.extend_from_slice(body);
            out
        }
        let mut sets = Vec::new();
        for rdn in rdns {
            let mut atvs = Vec::new();
            for (oid, tag, value) in rdn.iter() {
                let mut atv = tlv(0x06, oid);
                atv.extend(tlv(*tag, value));
                atvs.extend(tlv(0x30, &atv));
            }
            sets.extend(tlv(0x31, &atvs));
        }
        tlv(0x30, &sets)
    }

    const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
    const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
    const OID_OU: &[u8] = &[0x55, 0x04, 0x0b];
    const OID_C: &[u8] = &[0x55, 0x04, 0x06];

    #[test]
    fn a_multi_valued_rdn_is_flattened_as_go_flattens_it() {
        // Go's TestRDNSequenceString's name: C=US / O=Widget Inc. / OU=Sales+CN=J. Smith.
        // Its RDNSequence.String() keeps the +; a certificate's Name.String() does not.
        let der = name_der(&[
            &[(OID_C, 0x13, b"US")],
            &[(OID_O, 0x13, b"Widget Inc.")],
            &[(OID_OU, 0x13, b"Sales"), (OID_CN, 0x13, b"J. Smith")],
        ]);
        let (_, name) = X509Name::from_der(&der).unwrap();
        assert_eq!(
            go_name_string(&name),
            "CN=J. Smith,OU=Sales,O=Widget Inc.,C=US"
        );
    }

    #[test]
    fn string_types_are_read_as_go_reads_them() {
        let der = name_der(&[
            // BMPString "Ab" with a NUL terminator.
            &[(OID_O, 0x1e, &[0, b'A', 0, b'b', 0, 0])],
            // T61String: Latin-1 é.
            &[(OID_OU, 0x14, &[b'c', 0xe9])],
            // UTF8String.
            &[(OID_CN, 0x0c, "ü".as_bytes())],
        ]);
        let (_, name) = X509Name::from_der(&der).unwrap();
        assert_eq!(go_name_string(&name), "CN=ü,OU=cé,O=Ab");
    }
}
