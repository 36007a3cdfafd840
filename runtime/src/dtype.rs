//! Storage types of tensors (f32, f16, bf16) and a tensor read where it is stored
//! ([`Stored`]). Arithmetic is always f32.

/// Storage type of one tensor in the blob. Arithmetic is always f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// IEEE-754 binary32, little-endian.
    F32 = 0,
    /// IEEE-754 binary16, little-endian.
    F16 = 1,
    /// bfloat16, little-endian.
    Bf16 = 2,
}

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::Bf16 => 2,
        }
    }
    /// Decode a dtype code; `None` if unknown.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            2 => Some(DType::Bf16),
            _ => None,
        }
    }
    /// Short lowercase name ("f32", "f16", "bf16").
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
        }
    }
    /// Decode element `i` of little-endian `bytes` (caller guarantees bounds).
    #[inline(always)] // in the inner loops of layers read from flash (`Stored`)
    pub fn get(self, bytes: &[u8], i: usize) -> f32 {
        match self {
            DType::F32 => {
                let b = &bytes[4 * i..4 * i + 4];
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
            DType::F16 => f16_to_f32(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])),
            DType::Bf16 => half::bf16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32(),
        }
    }
    /// Encode `v` as little-endian bytes into `out` (len == `size()`), rounding to nearest.
    /// A finite value beyond the dtype's range saturates to its largest finite value, so a
    /// blob written from finite parameters always parses again.
    #[inline]
    pub fn put(self, v: f32, out: &mut [u8]) {
        match self {
            DType::F32 => out.copy_from_slice(&v.to_le_bytes()),
            DType::F16 => {
                let max = half::f16::MAX.to_f32();
                let v = if v.is_finite() { v.clamp(-max, max) } else { v };
                out.copy_from_slice(&half::f16::from_f32(v).to_le_bytes())
            }
            DType::Bf16 => {
                let max = half::bf16::MAX.to_f32();
                let v = if v.is_finite() { v.clamp(-max, max) } else { v };
                out.copy_from_slice(&half::bf16::from_f32(v).to_le_bytes())
            }
        }
    }
}

/// The f32 value of IEEE binary16 bits `h`: exactly `half::f16::from_bits(h).to_f32()` (a test
/// checks all 65,536), in integer operations with the common case (a normal number) first.
/// `half`'s portable conversion is a call of some 60 instructions on a Cortex-M4F, paid for
/// every weight a frozen f16 layer reads from flash; this is about ten.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let em = h & 0x7fff;
    let bits = if (0x0400..0x7c00).contains(&em) {
        // Normal: rebias the exponent from 15 to 127.
        (em << 13) + (112 << 23)
    } else if em == 0 {
        0
    } else if em < 0x0400 {
        // Subnormal m · 2^-24, normalized: top bit of m at position p (0..=9).
        let p = 31 - em.leading_zeros();
        ((p + 103) << 23) | ((em << (23 - p)) & 0x007f_ffff)
    } else if em == 0x7c00 {
        0x7f80_0000
    } else {
        // NaN: payload kept, quiet bit set.
        0x7fc0_0000 | ((em & 0x03ff) << 13)
    };
    f32::from_bits(sign | bits)
}

/// A tensor's values where the blob stores them (little-endian f32, f16 or bf16 bytes, possibly
/// unaligned), decoded one value at a time: how the learner reads frozen layers in
/// [`crate::Mode::Device`] without copying them to RAM.
#[derive(Clone, Copy, Debug)]
pub struct Stored<'a> {
    /// Storage type.
    pub dtype: DType,
    /// The values' bytes, `len() * dtype.size()` long.
    pub bytes: &'a [u8],
}

impl Stored<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.dtype.size()
    }
    /// True when the tensor holds no value.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// Value `i` (`i < len()`, else it panics).
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        self.dtype.get(self.bytes, i)
    }
}
