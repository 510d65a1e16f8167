//! The `deletion-vector-v1` Puffin blob (Iceberg v3 spec, "Deletion Vectors"): the positions of
//! one data file's deleted rows.
//!
//! Layout: the length of magic plus vector (4 bytes, big-endian), the magic `D1 D3 39 64`, the
//! vector as a 64-bit Roaring bitmap in the portable format (which `roaring::RoaringTreemap`
//! reads and writes), then a CRC-32 of magic plus vector (4 bytes, big-endian). The blob is
//! never compressed.

use roaring::RoaringTreemap;

use floe_common::error::FloeError;

const MAGIC: [u8; 4] = [0xD1, 0xD3, 0x39, 0x64];
/// Length prefix, magic and checksum around the bitmap.
const FRAMING_BYTES: usize = 12;

/// The deleted positions in `blob`; `location` names the Puffin file in errors.
pub fn decode(blob: &[u8], location: &str) -> Result<RoaringTreemap, FloeError> {
    let corrupt = |why: &str| FloeError::plan(format!("deletion vector in {location}: {why}"));
    if blob.len() < FRAMING_BYTES {
        return Err(corrupt("blob shorter than its framing"));
    }
    let declared = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    if declared + 8 != blob.len() {
        return Err(corrupt(&format!(
            "length prefix says {declared} bytes, blob has {}",
            blob.len() - 8
        )));
    }
    let body = &blob[4..4 + declared];
    if body[..4] != MAGIC {
        return Err(corrupt("wrong magic bytes"));
    }
    let stored_crc = u32::from_be_bytes([
        blob[4 + declared],
        blob[5 + declared],
        blob[6 + declared],
        blob[7 + declared],
    ]);
    if crc32fast::hash(body) != stored_crc {
        return Err(corrupt("checksum mismatch"));
    }
    RoaringTreemap::deserialize_from(&body[4..])
        .map_err(|e| corrupt(&format!("invalid bitmap: {e}")))
}

/// `positions` as a `deletion-vector-v1` blob.
pub fn encode(positions: &RoaringTreemap) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + positions.serialized_size());
    body.extend_from_slice(&MAGIC);
    // Writing into a Vec cannot fail.
    let _ = positions.serialize_into(&mut body);
    let mut blob = Vec::with_capacity(body.len() + 8);
    blob.extend_from_slice(&(body.len() as u32).to_be_bytes());
    blob.extend_from_slice(&body);
    blob.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    blob
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_corruption() {
        let positions: RoaringTreemap = [0u64, 7, 8, 1 << 33].into_iter().collect();
        let blob = encode(&positions);
        assert_eq!(decode(&blob, "f.puffin").unwrap(), positions);

        let mut flipped = blob.clone();
        let last_body_byte = flipped.len() - 5;
        flipped[last_body_byte] ^= 1;
        let err = decode(&flipped, "f.puffin").unwrap_err().to_string();
        assert!(
            err.contains("f.puffin") && err.contains("checksum"),
            "{err}"
        );
        assert!(decode(&blob[..6], "f.puffin").is_err());
    }
}
