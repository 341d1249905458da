//! Everything the VMM writes into guest memory before the first instruction runs.
pub mod acpi;
