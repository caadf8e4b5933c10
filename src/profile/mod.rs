//! Profiles: typed, validated descriptions of hardware and models, loaded from TOML.

pub mod catalog;
pub mod curve;
pub mod frontend;
pub mod hardware;
pub mod kernel_curves;
pub mod model;
pub mod moe_curve;
pub mod precision;
mod validate;
pub mod wafer;

pub use catalog::{load_hardware, load_model, Override};
pub use curve::{GemmCurve, GemmCurves, GemmGroup};
pub use frontend::Frontend;
pub use hardware::{
    GpuSystem, HardwareKind, HardwareProfile, Power, PowerBoundary, Price, PriceBasis, WaferSystem,
};
pub use kernel_curves::{
    AttentionCurve, AttentionCurves, AttentionWork, CollectiveCurve, CollectiveCurves,
};
pub use model::{ModelDims, ModelProfile};
pub use moe_curve::{MoeCurve, MoeCurves, MoeWork};
pub use precision::{ComputeClass, Precision};
