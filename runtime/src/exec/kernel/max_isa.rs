//! `FQ_MAX_ISA`: a run-time ceiling on the instruction set the micro-kernels may use, so one
//! binary can time (or test) every kernel path the CPU offers, as oneDNN's `ONEDNN_MAX_CPU_ISA`
//! does.
//!
//! It can only lower the choice: the detection in [`super::path`] and [`super::int8_path`] still
//! requires the CPU to have an instruction set, and the ceiling only removes candidates. It is
//! read once, with the first kernel choice, so it must be set before the process runs a model.
//! An unknown value is reported once on stderr (naming the variable and the accepted values)
//! and ignored: a benchmark's environment typo must not abort a deployed classifier.

use std::sync::OnceLock;

/// The environment variable read.
pub const VAR: &str = "FQ_MAX_ISA";

/// The most a kernel choice may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxIsa {
    /// Plain Rust loops only (the compiler's baseline vectorisation: SSE2 on x86-64).
    Portable,
    /// x86-64 up to SSSE3 (the 128-bit integer kernel; floats on the portable loops): what a
    /// CPU without AVX runs (Intel's Celeron and Pentium Silver of the Atom lines).
    Ssse3,
    /// x86-64 up to AVX2 (and FMA for the f32 kernel): what an AVX2-only CPU runs.
    Avx2,
    /// x86-64 up to AVX-VNNI (the 256-bit `VPDPBUSD` integer kernel), no AVX-512.
    AvxVnni,
    /// x86-64 up to AVX-512 (the AVX-512F f32 kernel, the AVX-512 VNNI integer kernel).
    Avx512,
    /// aarch64 NEON without the dot-product extension (the integer kernel uses SMLAL).
    Neon,
    /// No ceiling: the best the CPU has (the default).
    Native,
}

/// The values [`parse`] accepts on this architecture, for help and error messages.
pub fn accepted() -> &'static [&'static str] {
    if cfg!(target_arch = "x86_64") {
        &["portable", "ssse3", "avx2", "avxvnni", "avx512", "native"]
    } else if cfg!(target_arch = "aarch64") {
        &["portable", "neon", "native"]
    } else {
        &["portable", "native"]
    }
}

/// Parses a value of `FQ_MAX_ISA` (case-insensitive, surrounding blanks ignored; empty means
/// `native`). A value naming another architecture's instruction set is refused like a typo.
pub fn parse(value: &str) -> Result<MaxIsa, String> {
    let v = value.trim().to_ascii_lowercase();
    let isa = match v.as_str() {
        "" | "native" | "max" => Some(MaxIsa::Native),
        "portable" | "none" => Some(MaxIsa::Portable),
        "ssse3" if cfg!(target_arch = "x86_64") => Some(MaxIsa::Ssse3),
        "avx2" if cfg!(target_arch = "x86_64") => Some(MaxIsa::Avx2),
        "avxvnni" | "avx-vnni" if cfg!(target_arch = "x86_64") => Some(MaxIsa::AvxVnni),
        "avx512" | "avx-512" if cfg!(target_arch = "x86_64") => Some(MaxIsa::Avx512),
        "neon" if cfg!(target_arch = "aarch64") => Some(MaxIsa::Neon),
        _ => None,
    };
    isa.ok_or_else(|| {
        format!(
            "{VAR}={value:?} is not an instruction set of this build; accepted: {}",
            accepted().join(", ")
        )
    })
}

/// The ceiling from `FQ_MAX_ISA`, read on the first call; an unset variable is `Native`, a bad
/// value is reported once on stderr and taken as `Native`.
pub fn max_isa() -> MaxIsa {
    static MAX: OnceLock<MaxIsa> = OnceLock::new();
    *MAX.get_or_init(|| match std::env::var(VAR) {
        Err(_) => MaxIsa::Native,
        Ok(v) => parse(&v).unwrap_or_else(|e| {
            eprintln!("warning: {e}; using the best kernels the CPU has");
            MaxIsa::Native
        }),
    })
}

impl MaxIsa {
    /// Whether x86-64 SSSE3 kernels are allowed.
    pub fn allows_ssse3(self) -> bool {
        self != MaxIsa::Portable && self != MaxIsa::Neon
    }

    /// Whether x86-64 AVX2 kernels are allowed.
    pub fn allows_avx2(self) -> bool {
        matches!(
            self,
            MaxIsa::Avx2 | MaxIsa::AvxVnni | MaxIsa::Avx512 | MaxIsa::Native
        )
    }

    /// Whether the 256-bit AVX-VNNI integer kernel is allowed.
    pub fn allows_avxvnni(self) -> bool {
        matches!(self, MaxIsa::AvxVnni | MaxIsa::Avx512 | MaxIsa::Native)
    }

    /// Whether AVX-512 kernels (f32 and VNNI) are allowed.
    pub fn allows_avx512(self) -> bool {
        matches!(self, MaxIsa::Avx512 | MaxIsa::Native)
    }

    /// Whether aarch64 NEON kernels are allowed.
    pub fn allows_neon(self) -> bool {
        matches!(self, MaxIsa::Neon | MaxIsa::Native)
    }

    /// Whether aarch64's dot-product (SDOT) kernel is allowed.
    /// AMX-INT8 only under no ceiling: `avx512` keeps the VNNI kernels (the benchmark's way to
    /// time both).
    pub fn allows_amx(self) -> bool {
        self == MaxIsa::Native
    }

    pub fn allows_dotprod(self) -> bool {
        self == MaxIsa::Native
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_accepted_values_of_this_architecture() {
        assert_eq!(parse("portable"), Ok(MaxIsa::Portable));
        assert_eq!(parse(" Portable\n"), Ok(MaxIsa::Portable));
        assert_eq!(parse("native"), Ok(MaxIsa::Native));
        assert_eq!(parse(""), Ok(MaxIsa::Native));
        for v in accepted() {
            assert!(parse(v).is_ok(), "{v} is listed as accepted");
        }
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(parse("AVX2"), Ok(MaxIsa::Avx2));
            assert_eq!(parse("ssse3"), Ok(MaxIsa::Ssse3));
            assert_eq!(parse("avx512"), Ok(MaxIsa::Avx512));
            assert_eq!(parse("AvxVnni"), Ok(MaxIsa::AvxVnni));
            assert!(parse("neon").is_err());
        }
        #[cfg(target_arch = "aarch64")]
        {
            assert_eq!(parse("neon"), Ok(MaxIsa::Neon));
            assert!(parse("avx2").is_err() && parse("avx512").is_err());
        }
    }

    #[test]
    fn an_unknown_value_names_the_variable_and_the_accepted_values() {
        let e = parse("avx9000").unwrap_err();
        assert!(e.contains("FQ_MAX_ISA=\"avx9000\""), "{e}");
        assert!(e.contains("portable") && e.contains("native"), "{e}");
    }

    #[test]
    fn a_ceiling_only_removes_instruction_sets() {
        assert!(!MaxIsa::Portable.allows_avx2() && !MaxIsa::Portable.allows_neon());
        assert!(MaxIsa::Avx2.allows_avx2() && !MaxIsa::Avx2.allows_neon());
        assert!(MaxIsa::Ssse3.allows_ssse3() && !MaxIsa::Ssse3.allows_avx2());
        assert!(MaxIsa::Avx2.allows_ssse3() && !MaxIsa::Portable.allows_ssse3());
        assert!(!MaxIsa::Avx2.allows_avxvnni() && !MaxIsa::Avx2.allows_avx512());
        assert!(MaxIsa::AvxVnni.allows_avxvnni() && !MaxIsa::AvxVnni.allows_avx512());
        assert!(MaxIsa::Avx512.allows_avx2() && MaxIsa::Avx512.allows_avxvnni());
        assert!(MaxIsa::Native.allows_avx512() && !MaxIsa::Portable.allows_avxvnni());
        assert!(MaxIsa::Neon.allows_neon() && !MaxIsa::Neon.allows_dotprod());
        assert!(MaxIsa::Native.allows_avx2() && MaxIsa::Native.allows_dotprod());
    }
}
