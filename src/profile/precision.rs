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
    /// AWQ/GPTQ-style 4-bit integer weights, quantised in groups of 128 along the input dimension,
    /// each group storing one 16-bit scale and one 4-bit zero point: (128 x 4 + 16 + 4) / 128 =
    /// 4.15625 bits = 0.51953125 bytes per weight. Group size 128 with a zero point is the AWQ
    /// paper's setting (Lin et al., "AWQ", MLSys 2024: INT4, g128) and AutoAWQ's default
    /// (`{"zero_point": True, "q_group_size": 128, "w_bit": 4}`; its GEMM layout keeps FP16
    /// `scales` and 4-bit `qzeros` packed eight to an int32 per group); AutoGPTQ's default group
    /// size is 128 too. GPTQ's optional act-order index (one int32 per input row, not per weight)
    /// is left out. Served checkpoints usually keep the embedding and LM head at 16 bits, while
    /// the model profile applies `weights` to every weight, so those come out low by about 1.48
    /// bytes per parameter (Qwen2.5 32B with int4 weights: 17.0 GB here, about 19.3 GB with its
    /// 1.56 B embedding and head parameters at 16 bits).
    Int4,
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
            Precision::Int4 => (4.0 + (16.0 + 4.0) / 128.0) / 8.0,
        }
    }

    /// Bit width of the element without scales, used to order precisions. Integer formats sit
    /// with the float formats of their width (int8 with fp8, int4 with fp4); a GEMM runs in the
    /// wider of its two operands' classes ([`ComputeClass::of_gemm`]), so int4 weights with 16-bit
    /// activations run at the 16-bit rate, as weight-only kernels do (Marlin, the FP16 x INT4
    /// kernel vLLM serves AWQ/GPTQ checkpoints with, dequantises in registers and multiplies on
    /// FP16 tensor cores, IST-DASLab/marlin README 2024; TensorRT-LLM calls the scheme W4A16).
    /// With fp8 activations the GEMM runs at the 8-bit rate (TensorRT-LLM's W4A8 AWQ). Int4
    /// activations too (W4A4) would take the fp4-class rate: an approximation no shipped model
    /// uses.
    pub fn compute_class(self) -> ComputeClass {
        match self {
            Precision::Fp32 => ComputeClass::Fp32,
            Precision::Bf16 | Precision::Fp16 => ComputeClass::Bf16,
            Precision::Fp8 | Precision::Int8 => ComputeClass::Fp8,
            Precision::Fp4 | Precision::Mxfp4 | Precision::Nvfp4 | Precision::Int4 => {
                ComputeClass::Fp4
            }
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
            Precision::Int4 => "int4",
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
    fn int4_counts_its_group_scale_and_zero_point() {
        // Per group of 128 weights: 128 x 4 bits + a 16-bit scale + a 4-bit zero point = 532
        // bits, i.e. 4.15625 bits or 0.51953125 bytes a weight (exact in binary).
        assert_eq!(Precision::Int4.bytes(), 532.0 / 128.0 / 8.0);
        assert_eq!(Precision::Int4.bytes(), 0.51953125);
        assert_eq!(Precision::Int4.name(), "int4");
    }

    #[test]
    fn int4_weights_run_at_the_activation_rate() {
        assert_eq!(
            ComputeClass::of_gemm(Precision::Int4, Precision::Bf16),
            ComputeClass::Bf16
        );
        assert_eq!(
            ComputeClass::of_gemm(Precision::Int4, Precision::Fp8),
            ComputeClass::Fp8
        );
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
