//! pax extended header records: `"<len> <key>=<value>\n"`, where `len`
//! counts the whole record. Values are bytes and may contain newlines
//! (binary xattrs, odd file names), so records are split by their length,
//! never by line.

use std::io;

fn bad(m: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed pax record: {m}"),
    )
}

/// Parses the data of a pax `x` or `g` header into key/value pairs.
pub fn parse(mut data: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    // Trailing NUL padding is allowed.
    while !data.is_empty() && data[0] != 0 {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("no length"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("length is not a number"))?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("length does not match the record"));
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("no `=`"))?;
        let key = std::str::from_utf8(&rec[..eq]).map_err(|_| bad("key is not UTF-8"))?;
        out.push((key.to_owned(), rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_with_newlines() {
        let mut b = tar::Builder::new(Vec::new());
        let v: &[u8] = b"a\nb\0c=d";
        b.append_pax_extensions([("SCHILY.xattr.user.x", v), ("path", b"x\ny".as_slice())])
            .unwrap();
        let data = b.into_inner().unwrap();
        let size = tar::Header::from_byte_slice(&data[..512]).size().unwrap() as usize;
        let recs = parse(&data[512..512 + size]).unwrap();
        assert_eq!(recs[0], ("SCHILY.xattr.user.x".into(), v.to_vec()));
        assert_eq!(recs[1], ("path".into(), b"x\ny".to_vec()));
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(parse(b"99 path=x\n").is_err());
        assert!(parse(b"x path=x\n").is_err());
        assert!(parse(b"9 pathx\n").is_err());
        assert!(parse(b"10 path=x\n\0\0").is_ok());
    }
}
