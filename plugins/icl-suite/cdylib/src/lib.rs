//! The shared library of `lineage-icl-suite`: the plugin's C entry
//! point and nothing else. The suite itself is an rlib, which `lineage`
//! links in as a built-in; two linked plugins cannot both define the
//! unmangled `lineage_plugin_entry` (see `lineage_plugin::plugin_descriptor!`).

lineage_plugin::export_plugin!(suite::IclPlugin);
