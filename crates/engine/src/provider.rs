//! The seam for languages: a [`DependencyProvider`] makes the dependency
//! layer(s) of one language from the project's lock, for the base's target.
//! Python is the first ([`crate::python`]); the next language is a sibling
//! module implementing the same trait and one more line in [`all`].

use futures_util::future::BoxFuture;
use oxbuild_build::ExtraLayer;
use oxbuild_config::Config;

use crate::base::Base;
use crate::{Error, Request, Services};

/// What a provider gets to work with.
pub struct Context<'a> {
    /// The build request.
    pub request: &'a Request,
    /// The project's config.
    pub cfg: &'a Config,
    /// The base, scanned.
    pub base: &'a Base,
    /// The shared clients and cache.
    pub services: &'a Services,
    /// The interpreter that compiles bytecode, when there is one.
    pub bytecode: Option<&'a oxbuild_python::bytecode::Compiler>,
}

/// The layers a provider made.
#[derive(Debug, Clone)]
pub struct Provided {
    /// Layers of the production image, bottom first, under the app layer.
    pub production: Vec<ExtraLayer>,
    /// Layers the test variant adds on top of the production ones.
    pub test: Vec<ExtraLayer>,
    /// What it did, for the build report (`--json`).
    pub report: serde_json::Value,
    /// The packages in the production layers, for the SBOM.
    pub packages: Vec<oxbuild_sbom::Package>,
}

/// One language's dependency layers.
pub trait DependencyProvider: Send + Sync {
    /// The language, as reports name it (`python`).
    fn language(&self) -> &'static str;

    /// The layers for this project, or None when it has nothing of this
    /// language to install (no lock configured or found).
    fn provide<'a>(&'a self, cx: &'a Context<'a>) -> BoxFuture<'a, Result<Option<Provided>, Error>>;
}

/// Every provider, in the order their layers stack.
pub fn all() -> Vec<Box<dyn DependencyProvider>> {
    vec![Box::new(crate::python::Python), Box::new(crate::node::Node)]
}
