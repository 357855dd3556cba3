//! `#[derive(Module)]`: writes `Module::visit` for a struct from its fields, and `forward` as
//! a call to the struct's own inherent `forward` (burn's derive, for graphgrad's `Module`).
//!
//! Each field is shown to the visitor under its name (tuple fields under their index):
//! - by default through `graphgrad_nn::Field`: a child module, a `Var` parameter, or an
//!   `Option`, `Vec` or array of them (elements named `field.0`, `field.1`, ...);
//! - `#[module(buffer)]`: a `Var` (or `Option`/`Vec` of them) that is state but not trained;
//! - `#[module(training)]`: a `Flag` training-mode flag;
//! - `#[module(rng)]`: a `Generator` random stream (saved by checkpoints);
//! - `#[module(skip)]`: anything else (sizes, configuration).
//!
//! The struct must have an inherent `fn forward(&self, &Tensor) -> Result<Tensor>` (without
//! one, compiling fails with "no function or associated item named `forward`"), and be
//! declared at module level: the call is made from a generated child module, where the
//! `Module` trait is not in scope, so it can only reach the inherent method. Bounds on a
//! generic struct must therefore name their traits by full path.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use proc_macro_crate::{crate_name, FoundCrate};
use quote::{format_ident, quote};
use syn::{parse_macro_input, Data, DeriveInput, Fields, Index};

/// Derives `graphgrad_nn::Module` (see the crate docs for the field attributes).
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// How a field takes part in the traversal.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Field,
    Buffer,
    Training,
    Rng,
    Skip,
}

fn role(field: &syn::Field) -> syn::Result<Role> {
    let mut role = Role::Field;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            let found = if meta.path.is_ident("buffer") {
                Role::Buffer
            } else if meta.path.is_ident("training") {
                Role::Training
            } else if meta.path.is_ident("rng") {
                Role::Rng
            } else if meta.path.is_ident("skip") {
                Role::Skip
            } else {
                return Err(meta.error("expected `buffer`, `training`, `rng` or `skip`"));
            };
            if role != Role::Field {
                return Err(meta.error("a field takes one #[module(...)] role"));
            }
            role = found;
            Ok(())
        })?;
    }
    Ok(role)
}

/// The path of graphgrad-nn as the crate using the derive names it.
fn nn_path() -> TokenStream2 {
    match crate_name("graphgrad-nn") {
        Ok(FoundCrate::Itself) => quote!(::graphgrad_nn),
        Ok(FoundCrate::Name(name)) => {
            let name = format_ident!("{name}");
            quote!(::#name)
        }
        Err(_) => match crate_name("graphgrad") {
            Ok(FoundCrate::Itself) => quote!(::graphgrad::nn),
            Ok(FoundCrate::Name(name)) => {
                let name = format_ident!("{name}");
                quote!(::#name::nn)
            }
            Err(_) => quote!(::graphgrad_nn),
        },
    }
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(&input.ident, "#[derive(Module)] needs a struct"));
    };
    let nn = nn_path();
    let mut visits = Vec::new();
    let fields: Vec<(String, TokenStream2, &syn::Field)> = match &data.fields {
        Fields::Named(named) => named
            .named
            .iter()
            .map(|f| {
                let ident = f.ident.as_ref().expect("named fields have names");
                (ident.to_string(), quote!(#ident), f)
            })
            .collect(),
        Fields::Unnamed(unnamed) => unnamed
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let index = Index::from(i);
                (i.to_string(), quote!(#index), f)
            })
            .collect(),
        Fields::Unit => Vec::new(),
    };
    for (name, member, field) in fields {
        let visit = match role(field)? {
            Role::Field => quote!(#nn::Field::visit_field(&self.#member, #name, visitor);),
            Role::Buffer => quote!(#nn::BufferField::visit_buffer(&self.#member, #name, visitor);),
            Role::Training => quote!(#nn::Visitor::mode(visitor, &self.#member);),
            Role::Rng => quote!(#nn::Visitor::random_stream(visitor, #name, &self.#member);),
            Role::Skip => quote!(),
        };
        visits.push(visit);
    }
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    // The struct's inherent `forward` is called from a module of its own, where the `Module`
    // trait is not in scope: a struct without one is a compile error there ("no function or
    // associated item named `forward`"), never a trait method calling itself.
    let helper = format_ident!("__graphgrad_module_{}", ident);
    let turbofish = ty_generics.as_turbofish();
    Ok(quote! {
        impl #impl_generics #nn::Module for #ident #ty_generics #where_clause {
            /// Calls the struct's own `forward`.
            fn forward(
                &self,
                input: &#nn::__private::Tensor,
            ) -> #nn::__private::Result<#nn::__private::Tensor> {
                #helper::forward(self, input)
            }

            fn visit(&self, visitor: &mut dyn #nn::Visitor) {
                let _ = &visitor;
                #(#visits)*
            }
        }

        #[doc(hidden)]
        #[allow(non_snake_case)]
        mod #helper {
            pub(super) fn forward #impl_generics (
                module: &super::#ident #ty_generics,
                input: &#nn::__private::Tensor,
            ) -> #nn::__private::Result<#nn::__private::Tensor> #where_clause {
                super::#ident #turbofish::forward(module, input)
            }
        }
    })
}
