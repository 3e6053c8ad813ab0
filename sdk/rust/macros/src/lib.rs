//! Procedural macros of `weir-sdk`. Use them through `weir-sdk` (`#[weir::map]`,
//! `weir::plugin!`), which documents them; this crate only generates code.
//!
//! Each attribute leaves the user's function untouched, so it stays callable from plain unit
//! tests, and adds a hidden `const __weir_function_<name>: weir::Function` beside it: the
//! function's name, kind and a monomorphised row invoker (decode, call, encode). `plugin!`
//! turns the listed paths into those constants, so it needs no registry at run time.
//!
//! The generated code names the SDK by whatever the plugin crate calls it in its
//! `Cargo.toml` (plugin crates rename `weir-sdk` to `weir`), found with `proc-macro-crate`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, LitStr, Path, ReturnType, Token, Type, bracketed};

#[derive(Clone, Copy)]
enum Kind {
    Map,
    Filter,
    FlatMap,
    KeySelector,
    TimestampAssigner,
}

impl Kind {
    fn variant(self) -> Ident {
        let name = match self {
            Kind::Map => "Map",
            Kind::Filter => "Filter",
            Kind::FlatMap => "FlatMap",
            Kind::KeySelector => "KeySelector",
            Kind::TimestampAssigner => "TimestampAssigner",
        };
        Ident::new(name, Span::call_site())
    }
}

/// A map: one output row per input row.
#[proc_macro_attribute]
pub fn map(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_function(Kind::Map, attr, item)
}

/// A filter: `bool`; kept rows pass through unchanged.
#[proc_macro_attribute]
pub fn filter(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_function(Kind::Filter, attr, item)
}

/// A flat-map: any `IntoIterator` of output rows.
#[proc_macro_attribute]
pub fn flat_map(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_function(Kind::FlatMap, attr, item)
}

/// A key selector: the record's key.
#[proc_macro_attribute]
pub fn key_selector(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_function(Kind::KeySelector, attr, item)
}

/// A timestamp assigner: the event time, `i64` ms.
#[proc_macro_attribute]
pub fn timestamp_assigner(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_function(Kind::TimestampAssigner, attr, item)
}

/// `plugin! { name: "...", version: "...", functions: [a, b, module::c], aggregates: [avg: Avg],
/// processes: [count: Count], co_processes: [join: Join], process_windows: [top: Top] }`
#[proc_macro]
pub fn plugin(input: TokenStream) -> TokenStream {
    let spec = syn::parse_macro_input!(input as PluginSpec);
    expand_plugin(spec).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// The path of the SDK crate as the calling crate names it.
fn sdk_path() -> TokenStream2 {
    use proc_macro_crate::{FoundCrate, crate_name};
    match crate_name("weir-sdk") {
        Ok(FoundCrate::Name(name)) => {
            let ident = Ident::new(&name, Span::call_site());
            quote!(::#ident)
        }
        // Inside weir-sdk itself (its doctests and tests): the library declares
        // `extern crate self as weir_sdk`, so this path works there too.
        Ok(FoundCrate::Itself) => quote!(::weir_sdk),
        // Not a direct dependency (e.g. re-exported by another crate): the documented name.
        Err(_) => quote!(::weir),
    }
}

fn descriptor_ident(function: &Ident) -> Ident {
    format_ident!("__weir_function_{}", function, span = function.span())
}

fn expand_function(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let item2 = TokenStream2::from(item.clone());
    if !attr.is_empty() {
        let error = syn::Error::new(attr.span(), "weir function attributes take no arguments").into_compile_error();
        return quote!(#error #item2).into();
    }
    match syn::parse::<ItemFn>(item) {
        Ok(function) => match function_descriptor(kind, &function) {
            Ok(descriptor) => quote!(#function #descriptor).into(),
            Err(error) => {
                let error = error.into_compile_error();
                quote!(#function #error).into()
            }
        },
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #item2).into()
        }
    }
}

fn function_descriptor(kind: Kind, function: &ItemFn) -> syn::Result<TokenStream2> {
    let sig = &function.sig;
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new(asyncness.span(), "a weir function cannot be async"));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a weir function cannot be generic: the component needs one concrete input type",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(variadic.span(), "a weir function cannot be variadic"));
    }
    let arg = match (sig.inputs.len(), sig.inputs.first()) {
        (1, Some(FnArg::Typed(arg))) => arg,
        (1, Some(FnArg::Receiver(receiver))) => {
            return Err(syn::Error::new(receiver.span(), "a weir function cannot take `self`"));
        }
        _ => {
            return Err(syn::Error::new(
                sig.inputs.span(),
                "a weir function takes exactly one argument: the input row",
            ));
        }
    };

    let sdk = sdk_path();
    let ident = &sig.ident;
    let name = LitStr::new(&ident.to_string(), ident.span());
    let vis = &function.vis;
    let descriptor = descriptor_ident(ident);
    let variant = kind.variant();

    // `&str` and `&[u8]` borrow from the row; any other `&T` / `&mut T` decodes an owned `T`.
    let (decode, argument) = match &*arg.ty {
        Type::Reference(reference) if borrows_from_row(&reference.elem) => {
            let ty = &arg.ty;
            (quote!(let __weir_input: #ty = #sdk::__private::decode(__weir_row, #name)?;), quote!(__weir_input))
        }
        Type::Reference(reference) => {
            let elem = &reference.elem;
            let borrow = if reference.mutability.is_some() { quote!(&mut) } else { quote!(&) };
            (
                quote!(let mut __weir_input: #elem = #sdk::__private::decode(__weir_row, #name)?;),
                quote!(#borrow __weir_input),
            )
        }
        ty => (quote!(let __weir_input: #ty = #sdk::__private::decode(__weir_row, #name)?;), quote!(__weir_input)),
    };

    let call = quote_spanned!(sig.output.span()=> #ident(#argument));
    let value = if returns_result(&sig.output) { quote!(#sdk::__private::user_result(#call)?) } else { call };
    let emit = match kind {
        Kind::Map | Kind::KeySelector => {
            quote!(#sdk::__private::emit_one(__weir_out, &__weir_value, #name))
        }
        Kind::Filter => quote!(#sdk::__private::emit_filter(__weir_out, __weir_row, __weir_value)),
        Kind::FlatMap => quote!(#sdk::__private::emit_many(__weir_out, __weir_value, #name)),
        Kind::TimestampAssigner => {
            quote!(#sdk::__private::emit_timestamp(__weir_out, __weir_value, #name))
        }
    };

    let param = match &*arg.pat {
        syn::Pat::Ident(p) => p.ident.to_string(),
        _ => "input".to_string(),
    };
    let param = LitStr::new(&param, arg.span());
    let helper = match (kind, returns_result(&sig.output)) {
        (Kind::Map | Kind::KeySelector, false) => "signature_one",
        (Kind::Map | Kind::KeySelector, true) => "signature_one_ok",
        (Kind::FlatMap, false) => "signature_many",
        (Kind::FlatMap, true) => "signature_many_ok",
        (Kind::Filter, _) => "signature_filter",
        (Kind::TimestampAssigner, _) => "signature_timestamp",
    };
    let helper = Ident::new(helper, Span::call_site());

    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_mut)]
        #vis const #descriptor: #sdk::Function = {
            fn __weir_signature() -> #sdk::signature::Signature {
                #sdk::__private::#helper(#ident, #param)
            }
            fn __weir_invoke(
                __weir_row: &[u8],
                __weir_out: &mut #sdk::RowWriter,
            ) -> ::core::result::Result<(), ::std::string::String> {
                #decode
                let __weir_value = #value;
                #emit
            }
            #sdk::Function::new(#name, #sdk::FunctionKind::#variant, __weir_invoke).with_signature(__weir_signature)
        };
    })
}

fn borrows_from_row(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path.qself.is_none() && path.path.is_ident("str"),
        Type::Slice(slice) => matches!(&*slice.elem, Type::Path(p) if p.path.is_ident("u8")),
        _ => false,
    }
}

/// `Result<..>`, `io::Result<..>`, `anyhow::Result<..>`: judged by the last path segment,
/// since a macro cannot resolve type aliases.
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(path) => path.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

struct PluginSpec {
    name: LitStr,
    version: LitStr,
    functions: Vec<Path>,
    aggregates: Vec<TypedEntry>,
    processes: Vec<TypedEntry>,
    co_processes: Vec<TypedEntry>,
    process_windows: Vec<TypedEntry>,
}

/// `name: Type` in `aggregates: [...]` or `processes: [...]`: the function's name and the type
/// that implements it (the UDAF's accumulator, the process function).
struct TypedEntry {
    name: Ident,
    ty: Type,
}

impl Parse for TypedEntry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        Ok(TypedEntry { name, ty: input.parse()? })
    }
}

impl Parse for PluginSpec {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut name = None;
        let mut version = None;
        let mut functions = None;
        let mut aggregates = None;
        let mut processes = None;
        let mut co_processes = None;
        let mut process_windows = None;
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![:]>()?;
            match key.to_string().as_str() {
                "name" if name.is_none() => name = Some(input.parse::<LitStr>()?),
                "version" if version.is_none() => version = Some(input.parse::<LitStr>()?),
                "functions" if functions.is_none() => {
                    let content;
                    bracketed!(content in input);
                    let paths = Punctuated::<Path, Token![,]>::parse_terminated(&content)?;
                    functions = Some(paths.into_iter().collect::<Vec<_>>());
                }
                "aggregates" if aggregates.is_none() => aggregates = Some(parse_entries(input)?),
                "processes" if processes.is_none() => processes = Some(parse_entries(input)?),
                "co_processes" if co_processes.is_none() => co_processes = Some(parse_entries(input)?),
                "process_windows" if process_windows.is_none() => process_windows = Some(parse_entries(input)?),
                "name" | "version" | "functions" | "aggregates" | "processes" | "co_processes" | "process_windows" => {
                    return Err(syn::Error::new(key.span(), format!("`{key}` is given twice")));
                }
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown key `{key}`; expected `name`, `version`, `functions`, `aggregates`, `processes`, `co_processes` or `process_windows`"
                        ),
                    ));
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        let missing = |key| syn::Error::new(Span::call_site(), format!("plugin! needs `{key}: ...`"));
        Ok(PluginSpec {
            name: name.ok_or_else(|| missing("name"))?,
            version: version.ok_or_else(|| missing("version"))?,
            functions: match (
                functions,
                aggregates.is_some() || processes.is_some() || co_processes.is_some() || process_windows.is_some(),
            ) {
                (Some(functions), _) => functions,
                (None, true) => Vec::new(),
                (None, false) => return Err(missing("functions")),
            },
            aggregates: aggregates.unwrap_or_default(),
            processes: processes.unwrap_or_default(),
            co_processes: co_processes.unwrap_or_default(),
            process_windows: process_windows.unwrap_or_default(),
        })
    }
}

/// `[name: Type, ...]`
fn parse_entries(input: ParseStream) -> syn::Result<Vec<TypedEntry>> {
    let content;
    bracketed!(content in input);
    let entries = Punctuated::<TypedEntry, Token![,]>::parse_terminated(&content)?;
    Ok(entries.into_iter().collect())
}

fn expand_plugin(spec: PluginSpec) -> syn::Result<TokenStream2> {
    let name = spec.name.value();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(syn::Error::new(
            spec.name.span(),
            "a plugin name is non-empty and uses only ASCII letters, digits, `-` and `_`",
        ));
    }
    if !is_semver(&spec.version.value()) {
        return Err(syn::Error::new(spec.version.span(), "the version must be semver, e.g. \"1.2.0\""));
    }
    if spec.functions.is_empty()
        && spec.aggregates.is_empty()
        && spec.processes.is_empty()
        && spec.co_processes.is_empty()
        && spec.process_windows.is_empty()
    {
        return Err(syn::Error::new(Span::call_site(), "a plugin needs at least one function"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut descriptors = Vec::with_capacity(spec.functions.len());
    for path in &spec.functions {
        let Some(last) = path.segments.last() else {
            return Err(syn::Error::new(path.span(), "expected a function path"));
        };
        if !seen.insert(last.ident.to_string()) {
            return Err(syn::Error::new(
                last.ident.span(),
                format!("function `{}` is listed twice (names must be unique in a plugin)", last.ident),
            ));
        }
        let mut descriptor = path.clone();
        if let Some(last) = descriptor.segments.last_mut() {
            last.ident = descriptor_ident(&last.ident);
        }
        descriptors.push(descriptor);
    }

    let mut typed = |entries: &[TypedEntry]| -> syn::Result<Vec<(LitStr, Type)>> {
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            if !seen.insert(entry.name.to_string()) {
                return Err(syn::Error::new(
                    entry.name.span(),
                    format!("function `{}` is listed twice (names must be unique in a plugin)", entry.name),
                ));
            }
            out.push((LitStr::new(&entry.name.to_string(), entry.name.span()), entry.ty.clone()));
        }
        Ok(out)
    };
    let aggregates = typed(&spec.aggregates)?;
    let processes = typed(&spec.processes)?;
    let co_processes = typed(&spec.co_processes)?;
    let process_windows = typed(&spec.process_windows)?;

    let sdk = sdk_path();
    let plugin_name = &spec.name;
    let version = &spec.version;
    let aggregate_names = aggregates.iter().map(|(name, _)| name);
    let aggregate_types = aggregates.iter().map(|(_, ty)| ty);
    let process_names = processes.iter().map(|(name, _)| name);
    let process_types = processes.iter().map(|(_, ty)| ty);
    let co_names = co_processes.iter().map(|(name, _)| name);
    let co_types = co_processes.iter().map(|(_, ty)| ty);
    let window_names = process_windows.iter().map(|(name, _)| name);
    let window_types = process_windows.iter().map(|(_, ty)| ty);
    Ok(quote! {
        /// This crate's Weir plugin: its name, version, and tables of functions, aggregates
        /// and process functions (what `describe` reports and the exports dispatch over).
        /// Pass it to `weir::testing::Harness::new` or `weir::testing::ProcessHarness::new`.
        pub static PLUGIN: #sdk::Plugin = {
            const FUNCTIONS: &[#sdk::Function] = &[#(#descriptors),*];
            const AGGREGATES: &[#sdk::AggregateFunction] =
                &[#(#sdk::AggregateFunction::of::<#aggregate_types>(#aggregate_names)),*];
            const PROCESSES: &[#sdk::process::ProcessFunction] =
                &[#(#sdk::process::ProcessFunction::of::<#process_types>(#process_names),)*
                  #(#sdk::process::ProcessFunction::co::<#co_types>(#co_names),)*
                  #(#sdk::process::ProcessFunction::window::<#window_types>(#window_names),)*];
            #sdk::Plugin::with_aggregates(#plugin_name, #version, FUNCTIONS, AGGREGATES).with_processes(PROCESSES)
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __WeirPlugin;
            impl #sdk::__private::Exported for __WeirPlugin {
                fn plugin() -> &'static #sdk::Plugin {
                    &PLUGIN
                }
            }
            type __WeirComponent = #sdk::__private::Component<__WeirPlugin>;
            #sdk::__private::bindings::__weir_export_plugin!(
                __WeirComponent with_types_in #sdk::__private::bindings
            );
        };
    })
}

/// `MAJOR.MINOR.PATCH` with an optional `-pre` / `+build` suffix.
fn is_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}
