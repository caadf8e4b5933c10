//! Numeric formats of weights, activations and KV cache, with their storage size and the tensor-core
//! class they execute on.

use serde::{Deserialize, Serialize};

/// A numeric format as named in profiles (`bf16`, `fp8`, `mxfp4`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE single precision, 4 bytes.
    Fp32,
    /// bfloat16, 2 bytes.
    Bf16,
    /// IEEE half precision, 2 bytes.
    Fp16,
    /// 8-bit float (E4M3/E5M2), 1 byte.
    Fp8,
    /// 8-bit integer, 1 byte.
    Int8,
    /// Plain 4-bit float or integer without block scales, 0.5 byte.
    Fp4,
    /// OCP MXFP4: 4-bit E2M1 values in blocks of 32 sharing one 8-bit scale: 4.25 bits
    /// (OCP Microscaling Formats spec v1.0).
    Mxfp4,
    /// NVIDIA NVFP4: 4-bit E2M1 values in blocks of 16 sharing one FP8 scale: 4.5 bits
    /// (NVIDIA Blackwell NVFP4 documentation).
    Nvfp4,
}

/// The tensor-core rate a GEMM runs at; profiles give peak FLOP/s per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeClass {
    /// 4-bit tensor cores (Blackwell and later).
    Fp4,
    /// 8-bit tensor cores (Hopper and later; int8 on Ampere).
    Fp8,
    /// 16-bit tensor cores.
    Bf16,
    /// 32-bit (TF32 or FP32) math.
    Fp32,
}

impl Precision {
    /// Storage size of one element in bytes, block scales included.
    pub fn bytes(self) -> f64 {
        match self {
            Precision::Fp32 => 4.0,
            Precision::Bf16 | Precision::Fp16 => 2.0,
            Precision::Fp8 | Precision::Int8 => 1.0,
            Precision::Fp4 => 0.5,
            Precision::Mxfp4 => 4.25 / 8.0,
            Precision::Nvfp4 => 4.5 / 8.0,
        }
    }

    /// Bit width of the element without scales, used to order precisions.
    pub fn compute_class(self) -> ComputeClass {
        match self {
            Precision::Fp32 => ComputeClass::Fp32,
            Precision::Bf16 | Precision::Fp16 => ComputeClass::Bf16,
            Precision::Fp8 | Precision::Int8 => ComputeClass::Fp8,
            Precision::Fp4 | Precision::Mxfp4 | Precision::Nvfp4 => ComputeClass::Fp4,
        }
    }

    /// Profile spelling.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
            Precision::Fp8 => "fp8",
            Precision::Int8 => "int8",
            Precision::Fp4 => "fp4",
            Precision::Mxfp4 => "mxfp4",
            Precision::Nvfp4 => "nvfp4",
        }
    }
}

impl ComputeClass {
    /// The class a GEMM with these operand formats executes in: the wider of the two, since
    /// weight-only quantisation (e.g. 4-bit weights, 16-bit activations) dequantises to the
    /// activation format before the multiply.
    pub fn of_gemm(weights: Precision, activations: Precision) -> ComputeClass {
        weights.compute_class().max(activations.compute_class())
    }

    /// Next wider class, used when hardware lacks a native rate for this one.
    pub fn wider(self) -> Option<ComputeClass> {
        match self {
            ComputeClass::Fp4 => Some(ComputeClass::Fp8),
            ComputeClass::Fp8 => Some(ComputeClass::Bf16),
            ComputeClass::Bf16 => Some(ComputeClass::Fp32),
            ComputeClass::Fp32 => None,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            ComputeClass::Fp4 => "fp4",
            ComputeClass::Fp8 => "fp8",
            ComputeClass::Bf16 => "bf16",
            ComputeClass::Fp32 => "fp32",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_scaled_formats_count_their_scales() {
        assert_eq!(Precision::Mxfp4.bytes(), 0.53125);
        assert_eq!(Precision::Nvfp4.bytes(), 0.5625);
    }

    #[test]
    fn gemm_runs_in_the_wider_operand_class() {
        assert_eq!(
            ComputeClass::of_gemm(Precision::Mxfp4, Precision::Bf16),
            ComputeClass::Bf16
        );
        assert_eq!(
            ComputeClass::of_gemm(Precision::Fp8, Precision::Fp8),
            ComputeClass::Fp8
        );
    }
}
