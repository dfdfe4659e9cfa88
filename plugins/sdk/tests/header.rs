//! The C header `include/lineage_plugin.h` against `src/abi.rs`: a C program
//! generated from one table of every struct, field, type alias and constant
//! of the ABI is compiled against the header with the system C compiler
//! (`$CC`, else `cc`) and run; it prints each struct's size and alignment,
//! each field's offset, size and whether its C type is the one the Rust type
//! means, and each constant's value and type, and the test compares them all
//! with the Rust side. The table is checked to be exhaustive: struct
//! patterns without `..` name every field (a compile error otherwise), and
//! the names of every `pub const`, `pub struct` and `pub type` in `abi.rs`
//! and every `LN_*` macro of the header must appear in it.
//!
//! A missing C compiler fails the test (install one: `build-essential`).

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void};
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use lineage_plugin::abi::*;

// ---------------------------------------------------------------------------
// C spellings of Rust types

/// A Rust type that crosses the ABI, and how C spells it.
trait CType {
    /// The C type name (an abstract declarator), e.g. `uint32_t const *`.
    fn c_name() -> String;

    /// A C expression that is 1 when `expr` has this type and 0 otherwise.
    fn c_check(expr: &str) -> String {
        format!("_Generic(({expr}), {}: 1, default: 0)", Self::c_name())
    }
}

macro_rules! c_scalar {
    ($($rust:ty => $c:literal),* $(,)?) => {
        $(impl CType for $rust {
            fn c_name() -> String {
                $c.to_owned()
            }
        })*
    };
}

c_scalar! {
    () => "void",
    c_void => "void",
    c_char => "char",
    u32 => "uint32_t",
    i32 => "int32_t",
    u64 => "uint64_t",
    usize => "size_t",
    f32 => "float",
    f64 => "double",
}

impl<T: CType + ?Sized> CType for *const T {
    fn c_name() -> String {
        format!("{} const *", T::c_name())
    }
}

impl<T: CType + ?Sized> CType for *mut T {
    fn c_name() -> String {
        format!("{} *", T::c_name())
    }
}

/// A nullable function pointer is a plain C function pointer.
impl<T: CType> CType for Option<T> {
    fn c_name() -> String {
        T::c_name()
    }
}

/// An array field decays in `_Generic`: check its element type and length.
impl<T: CType, const N: usize> CType for [T; N] {
    fn c_name() -> String {
        format!("{}[{N}]", T::c_name())
    }

    fn c_check(expr: &str) -> String {
        format!(
            "(_Generic(({expr})[0], {}: 1, default: 0) && sizeof({expr}) / sizeof(({expr})[0]) == {N})",
            T::c_name()
        )
    }
}

macro_rules! c_fn_pointer {
    ($($arg:ident),*) => {
        impl<R: CType, $($arg: CType),*> CType for unsafe extern "C" fn($($arg),*) -> R {
            fn c_name() -> String {
                let args: Vec<String> = vec![$($arg::c_name()),*];
                let args = if args.is_empty() { "void".to_owned() } else { args.join(", ") };
                format!("{} (*)({args})", R::c_name())
            }
        }
    };
}

c_fn_pointer!();
c_fn_pointer!(A);
c_fn_pointer!(A, B);
c_fn_pointer!(A, B, C);
c_fn_pointer!(A, B, C, D);
c_fn_pointer!(A, B, C, D, E);
c_fn_pointer!(A, B, C, D, E, F);

/// The C type name of a field, from an accessor closure.
fn field_c_type<T, F: CType>(_: fn(&T) -> &F) -> (usize, String, fn(&str) -> String) {
    (size_of::<F>(), F::c_name(), F::c_check)
}

/// The C type name of a value's type.
fn value_c_check<T: CType>(_: &T, expr: &str) -> (String, String) {
    (T::c_name(), T::c_check(expr))
}

// ---------------------------------------------------------------------------
// The table

struct Field {
    name: &'static str,
    offset: usize,
    size: usize,
    c_type: String,
    c_check: fn(&str) -> String,
}

struct Struct {
    name: &'static str,
    size: usize,
    align: usize,
    fields: Vec<Field>,
}

/// Defines `structs()`, the table of structs, and their C names.
macro_rules! structs {
    ($($ty:ident { $($field:ident),* $(,)? })*) => {
        $(
            impl CType for $ty {
                fn c_name() -> String {
                    stringify!($ty).to_owned()
                }
            }
        )*

        /// Every struct of `abi.rs` with every field, in declaration order.
        fn structs() -> Vec<Struct> {
            vec![$({
                // No `..`: a field missing from the table is a compile error.
                #[allow(dead_code)]
                fn exhaustive(value: &$ty) {
                    let $ty { $($field: _),* } = value;
                }
                Struct {
                    name: stringify!($ty),
                    size: size_of::<$ty>(),
                    align: align_of::<$ty>(),
                    fields: vec![$({
                        let (size, c_type, c_check) = field_c_type(|s: &$ty| &s.$field);
                        Field {
                            name: stringify!($field),
                            offset: offset_of!($ty, $field),
                            size,
                            c_type,
                            c_check,
                        }
                    }),*],
                }
            }),*]
        }
    };
}

structs! {
    LnPlugin {
        abi_version, struct_size, name, version, description, offerings, n_offerings,
        create, evaluate, destroy, offering_reads, environment,
    }
    LnOffering { name, kind, metrics, n_metrics, description }
    LnMetric { name, direction }
    LnConfig { toml, entries, n_entries }
    LnConfigEntry { key, value }
    LnError { message, capacity }
    LnScores { values, n_organisms, n_metrics, written }
    LnCall { generation, n_organisms, ids, host }
    LnTensor { data, rank, shape }
    LnGenome { bits, n_bits, genes, n_genes }
    LnCurvePoint { step, train, heldout }
    LnCurve { points, n_points, status, diverged_at }
    LnData { kind, n, x, y, labels, n_labels, tokens, len }
    LnRun { what, stage, name, n, len, x, tokens, cotangent }
    LnHost { ctx, genome, gene, weights, curve, heldout, run, probes }
    LnTask { kind, inputs, outputs, steps, heldout, n_probes, has_direction }
    LnProbe { name, n, choices, n_choices }
    LnBatch {
        kind, n, steps, x, x_len, y, y_len, labels, labels_len, tokens, tokens_len, written,
    }
    LnEnvironmentApi { task, probe, direction, fill }
}

/// A constant: its Rust name, its C name, and its value.
struct Constant {
    rust: &'static str,
    c: &'static str,
    value: ConstValue,
}

enum ConstValue {
    /// An integer, and the C type it must have (`None`: any integer type).
    Int(i128, Option<(String, String)>),
    Str(&'static str),
}

macro_rules! int_constants {
    ($($name:ident),* $(,)?) => {
        vec![$(Constant {
            rust: stringify!($name),
            c: stringify!($name),
            value: ConstValue::Int($name as i128, Some(value_c_check(&$name, stringify!($name)))),
        }),*]
    };
}

fn constants() -> Vec<Constant> {
    let mut all = vec![
        // A plain `1`, so that `#if LINEAGE_PLUGIN_ABI_VERSION >= 2` works.
        Constant {
            rust: "ABI_VERSION",
            c: "LINEAGE_PLUGIN_ABI_VERSION",
            value: ConstValue::Int(ABI_VERSION as i128, None),
        },
        Constant {
            rust: "ABI_VERSION_MIN",
            c: "LINEAGE_PLUGIN_ABI_VERSION_MIN",
            value: ConstValue::Int(ABI_VERSION_MIN as i128, None),
        },
        Constant {
            rust: "ENTRY_SYMBOL",
            c: "LINEAGE_PLUGIN_ENTRY",
            value: ConstValue::Str(ENTRY_SYMBOL),
        },
    ];
    all.extend(int_constants![
        LN_OK,
        LN_ERROR,
        LN_UNFIT,
        LN_FITNESS,
        LN_SUITE,
        LN_MAXIMIZE,
        LN_MINIMIZE,
        LN_BIRTH,
        LN_LEARNED,
        LN_LIFE_NONE,
        LN_LIFE_COMPLETED,
        LN_LIFE_DIVERGED,
        LN_DATA_DENSE,
        LN_DATA_LABELED,
        LN_DATA_SEQUENCES,
        LN_DATA_TOKENS,
        LN_IGNORE,
        LN_RUN_OUTPUTS,
        LN_RUN_HIDDEN,
        LN_RUN_GRADIENT,
        LN_RUN_KERNEL,
        LN_MAX_RANK,
        LN_READS_WEIGHTS,
        LN_ENVIRONMENT,
        LN_FILL_TRAIN,
        LN_FILL_HELDOUT,
        LN_FILL_PROBE,
    ]);
    all
}

/// The type aliases: name, size, C type the alias must be.
fn aliases() -> Vec<(&'static str, usize, String)> {
    vec![
        ("LnStatus", size_of::<LnStatus>(), LnStatus::c_name()),
        ("LnEntry", size_of::<LnEntry>(), LnEntry::c_name()),
    ]
}

// ---------------------------------------------------------------------------
// The C program

fn c_program() -> String {
    let mut c = String::from(
        "/* Generated by plugins/sdk/tests/header.rs. */\n\
         #include \"lineage_plugin.h\"\n\n\
         #include <stddef.h>\n\
         #include <stdio.h>\n\n\
         int main(void)\n{\n",
    );
    for s in structs() {
        let t = s.name;
        c += &format!(
            "    printf(\"struct\\t{t}\\t%zu\\t%zu\\n\", sizeof({t}), (size_t)_Alignof({t}));\n"
        );
        for f in &s.fields {
            let expr = format!("((({t} *)0)->{})", f.name);
            c += &format!(
                "    printf(\"field\\t{t}\\t{f}\\t%zu\\t%zu\\t%d\\n\", offsetof({t}, {f}), sizeof {expr}, {check});\n",
                f = f.name,
                check = (f.c_check)(&expr),
            );
        }
    }
    for (name, _, c_type) in aliases() {
        c += &format!(
            "    printf(\"alias\\t{name}\\t%zu\\t%d\\n\", sizeof({name}), _Generic(({name})0, {c_type}: 1, default: 0));\n"
        );
    }
    for k in constants() {
        let name = k.c;
        match &k.value {
            ConstValue::Int(_, check) => {
                let check = check.as_ref().map_or("1".to_owned(), |(_, e)| e.clone());
                c += &format!(
                    "    printf(\"const\\t{name}\\t%lld\\t%d\\n\", (long long)({name}), {check});\n"
                );
            }
            ConstValue::Str(_) => {
                c += &format!("    printf(\"str\\t{name}\\t%s\\n\", {name});\n");
            }
        }
    }
    c += "    return 0;\n}\n";
    c
}

/// One value the C program prints: what it is, and what the Rust side
/// expects. A type check is a `C type ...` item that must print 1.
type Expected = Vec<(String, String)>;

fn type_check(c_type: &str) -> (String, String) {
    (format!("C type `{c_type}`"), "1".to_owned())
}

fn item(what: &str, value: impl ToString) -> (String, String) {
    (what.to_owned(), value.to_string())
}

/// What the Rust side expects the program to print, keyed like its lines.
fn expected() -> BTreeMap<String, Expected> {
    let mut e = BTreeMap::new();
    for s in structs() {
        let want = vec![item("size", s.size), item("alignment", s.align)];
        e.insert(format!("struct {}", s.name), want);
        for f in &s.fields {
            let want = vec![
                item("offset", f.offset),
                item("size", f.size),
                type_check(&f.c_type),
            ];
            e.insert(format!("field {}.{}", s.name, f.name), want);
        }
    }
    for (name, size, c_type) in aliases() {
        let want = vec![item("size", size), type_check(&c_type)];
        e.insert(format!("alias {name}"), want);
    }
    for k in constants() {
        let want = match &k.value {
            ConstValue::Int(v, Some((c_type, _))) => vec![item("value", v), type_check(c_type)],
            ConstValue::Int(v, None) => vec![item("value", v), item("(any integer type)", 1)],
            ConstValue::Str(s) => vec![item("value", s)],
        };
        e.insert(format!("const {} (Rust {})", k.c, k.rust), want);
    }
    e
}

/// The differences between what Rust expects and what C printed.
fn differences(want: &Expected, have: &str) -> Vec<String> {
    let have: Vec<&str> = have.split('\t').collect();
    if have.len() != want.len() {
        return vec![format!("C printed {have:?}")];
    }
    want.iter()
        .zip(have)
        .filter(|((_, w), h)| w != h)
        .map(|((what, w), h)| match what.strip_prefix("C type ") {
            Some(c_type) => format!("the header's type is not {c_type}"),
            None => format!("{what}: Rust {w}, C {h}"),
        })
        .collect()
}

/// Parses the program's output into the same keys as [`expected`].
fn parse_output(out: &str) -> BTreeMap<String, String> {
    let rust_name: BTreeMap<&str, &str> = constants().iter().map(|k| (k.c, k.rust)).collect();
    let mut got = BTreeMap::new();
    for line in out.lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        let (key, value) = match parts.as_slice() {
            ["struct", t, rest @ ..] => (format!("struct {t}"), rest.join("\t")),
            ["field", t, f, rest @ ..] => (format!("field {t}.{f}"), rest.join("\t")),
            ["alias", t, rest @ ..] => (format!("alias {t}"), rest.join("\t")),
            ["const", n, rest @ ..] => (
                format!("const {n} (Rust {})", rust_name[n]),
                rest.join("\t"),
            ),
            ["str", n, rest @ ..] => (
                format!("const {n} (Rust {})", rust_name[n]),
                rest.join("\t"),
            ),
            _ => panic!("unexpected line from the C program: {line:?}"),
        };
        got.insert(key, value);
    }
    got
}

// ---------------------------------------------------------------------------
// Running the C compiler

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh folder under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "lineage-plugin-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The compiler command from `var` (which may carry arguments, e.g.
/// `ccache gcc`), else `default`.
fn compiler(var: &str, default: &str) -> Vec<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![default.to_owned()])
}

/// Runs the C compiler on `args`; a missing compiler fails the test.
fn run_cc(args: &[&str]) {
    let cc = compiler("CC", "cc");
    let output = Command::new(&cc[0])
        .args(&cc[1..])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler `{}` ({e}): the header test needs one; install it \
                 (e.g. `apt-get install build-essential`, as CI does) or set $CC",
                cc.join(" ")
            )
        });
    assert!(
        output.status.success(),
        "`{} {}` failed:\n{}{}",
        cc.join(" "),
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn include_flag() -> String {
    format!("-I{}", sdk_dir().join("include").display())
}

const C_FLAGS: [&str; 5] = ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"];

// ---------------------------------------------------------------------------
// Tests

#[test]
fn header_matches_abi_rs() {
    let dir = TempDir::new("header");
    let source = dir.0.join("layout.c");
    let binary = dir.0.join("layout");
    std::fs::write(&source, c_program()).unwrap();
    let include = include_flag();
    let mut args: Vec<&str> = C_FLAGS.to_vec();
    args.extend([
        include.as_str(),
        "-o",
        binary.to_str().unwrap(),
        source.to_str().unwrap(),
    ]);
    run_cc(&args);

    let output = Command::new(&binary)
        .output()
        .expect("the layout program runs");
    assert!(
        output.status.success(),
        "the layout program failed: {output:?}"
    );
    let got = parse_output(&String::from_utf8(output.stdout).unwrap());

    let mut problems = Vec::new();
    for (key, want) in expected() {
        match got.get(&key) {
            Some(have) => {
                let diffs = differences(&want, have);
                if !diffs.is_empty() {
                    problems.push(format!("{key}: {}", diffs.join("; ")));
                }
            }
            None => problems.push(format!("{key}: not printed by the C program")),
        }
    }
    assert!(
        problems.is_empty(),
        "lineage_plugin.h differs from abi.rs ({} problems):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// Names declared by `prefix NAME` at the start of a line of `text`.
fn declared(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix(prefix))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn table_covers_every_item_of_abi_rs_and_the_header() {
    let abi = include_str!("../src/abi.rs");
    let header = std::fs::read_to_string(sdk_dir().join("include/lineage_plugin.h")).unwrap();

    let struct_names: Vec<&str> = structs().iter().map(|s| s.name).collect();
    let const_names: Vec<&str> = constants().iter().map(|k| k.rust).collect();
    let c_const_names: Vec<&str> = constants().iter().map(|k| k.c).collect();
    let alias_names: Vec<&str> = aliases().iter().map(|a| a.0).collect();

    let mut missing = Vec::new();
    for name in declared(abi, "pub struct ") {
        if !struct_names.contains(&name.as_str()) {
            missing.push(format!("struct {name} (abi.rs)"));
        }
    }
    for name in declared(abi, "pub const ") {
        if !const_names.contains(&name.as_str()) {
            missing.push(format!("const {name} (abi.rs)"));
        }
    }
    for name in declared(abi, "pub type ") {
        if !alias_names.contains(&name.as_str()) {
            missing.push(format!("type {name} (abi.rs)"));
        }
    }
    for name in declared(&header, "#define ") {
        if name.starts_with("LN_") && !c_const_names.contains(&name.as_str()) {
            missing.push(format!("#define {name} (lineage_plugin.h)"));
        }
    }
    for name in declared(&header, "struct ") {
        if !struct_names.contains(&name.as_str()) {
            missing.push(format!("struct {name} (lineage_plugin.h)"));
        }
    }
    assert!(
        missing.is_empty(),
        "items missing from the table in tests/header.rs (add them there, and to the other \
         side of the ABI):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn header_compiles_as_cpp() {
    let dir = TempDir::new("header-cpp");
    let source = dir.0.join("header.cpp");
    std::fs::write(
        &source,
        "#include \"lineage_plugin.h\"\n\
         static LnStatus entry_ok(const LnPlugin *p) { return p && p->create ? LN_OK : LN_ERROR; }\n\
         int main() { LnPlugin p = LnPlugin(); LnHost h = LnHost(); (void)h; return entry_ok(&p); }\n",
    )
    .unwrap();
    let cxx = compiler("CXX", "c++");
    let include = include_flag();
    let output = Command::new(&cxx[0])
        .args(&cxx[1..])
        .args(["-x", "c++", "-std=c++11", "-Wall", "-Wextra", "-Werror"])
        .args(["-fsyntax-only", include.as_str(), source.to_str().unwrap()])
        .output();
    match output {
        // C++ is a courtesy check: without a C++ compiler, say so and pass.
        Err(e) => eprintln!(
            "no C++ compiler `{}` ({e}): C++ check not run",
            cxx.join(" ")
        ),
        Ok(out) => assert!(
            out.status.success(),
            "lineage_plugin.h does not compile as C++:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The C example plugin builds warning-free against the header, exporting
/// the entry symbol.
#[test]
fn c_example_compiles() {
    let example = sdk_dir().join("../examples/learning-speed-c/learning_speed.c");
    if !Path::new(&example).exists() {
        panic!("missing {}", example.display());
    }
    let dir = TempDir::new("example");
    let library = dir.0.join("liblearning_speed.so");
    let include = include_flag();
    let mut args: Vec<&str> = C_FLAGS.to_vec();
    args.extend([
        "-shared",
        "-fPIC",
        "-O2",
        include.as_str(),
        "-o",
        library.to_str().unwrap(),
        example.to_str().unwrap(),
    ]);
    run_cc(&args);
    assert!(library.exists());
}
