//! The README's configuration table documents every setting the binaries read.

use infra::config::Settings;

#[test]
fn every_setting_is_documented_in_the_readme_configuration_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let table: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    let fields = Settings::field_names();
    assert!(fields.len() > 30, "{fields:?}");
    let missing: Vec<String> = fields
        .iter()
        .map(|f| Settings::env_name(f))
        .filter(|var| !table.iter().any(|row| row.contains(&format!("`{var}`"))))
        .collect();
    assert!(
        missing.is_empty(),
        "settings missing from the README table: {missing:?}"
    );
}

#[test]
fn conventional_names_are_used_where_they_exist() {
    assert_eq!(Settings::env_name("database_url"), "DATABASE_URL");
    assert_eq!(Settings::env_name("bind_addr"), "BIND_ADDR");
    assert_eq!(Settings::env_name("bcrypt_cost"), "CHATX_BCRYPT_COST");
}
