"""node.config: defaults, the TOML file, environment overrides, clear errors."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from node.base.config import Config, ConfigError, load_config, write_default_config


def test_defaults_serve_on_localhost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, {})
    assert config.host == "127.0.0.1"
    assert config.port == 8701
    assert config.public_url == "http://127.0.0.1:8701"
    assert config.data_dir == Path("refnode-data")
    assert config.database_path == Path("refnode-data/node.db")
    assert config.keys_dir == Path("refnode-data/keys")
    assert config.config_path == Path("refnode-data/refnode.toml")
    assert config.log_format == "console"
    assert config.delivery_deadline_s == 3 * 24 * 3600
    assert config.invitation_ttl_s == 7 * 24 * 3600
    assert config.max_envelope_bytes == 1_048_576
    assert config.enable_pq_suite is True
    assert config.key_passphrase_env == "REFNODE_KEY_PASSPHRASE"


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(ValueError):
        config.port = 9000  # type: ignore[misc]


def test_public_url_follows_host_and_port() -> None:
    assert Config(host="10.0.0.5", port=9000).public_url == "http://10.0.0.5:9000"
    assert Config(host="::1", port=9000).public_url == "http://[::1]:9000"
    assert (
        Config(public_url="https://refnode.example.org").public_url == "https://refnode.example.org"
    )


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "node.toml"
    path.parent.mkdir()
    path.write_text(
        'data_dir = "data"\nport = 9100\norg_name = "Acme Mortgages"\n'
        'log_format = "json"\nretry_base_delay_s = 0.5\nenable_pq_suite = false\n'
        'public_url = "https://acme.example/refnode"\n'
    )
    config = load_config(path, {})
    assert config.port == 9100
    assert config.org_name == "Acme Mortgages"
    assert config.log_format == "json"
    assert config.retry_base_delay_s == 0.5
    assert config.enable_pq_suite is False
    assert config.public_url == "https://acme.example/refnode"
    # a relative data_dir is relative to the file, not to the working directory
    assert config.data_dir == tmp_path / "conf" / "data"
    assert config.config_path == path


def test_env_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "refnode.toml"
    path.write_text('port = 9100\nlog_format = "console"\norg_name = "From file"\n')
    env = {
        "REFNODE_PORT": "8800",
        "REFNODE_LOG_FORMAT": "json",
        "REFNODE_DATA_DIR": str(tmp_path / "elsewhere"),
        "REFNODE_ENABLE_PQ_SUITE": "false",
        "REFNODE_KEY_PASSPHRASE": "not a setting, ignored",
        "PORT": "1",
    }
    config = load_config(path, env)
    assert config.port == 8800
    assert config.log_format == "json"
    assert config.enable_pq_suite is False
    assert config.data_dir == tmp_path / "elsewhere"
    assert config.org_name == "From file"
    assert config.public_url == "http://127.0.0.1:8800"


def test_default_file_is_found_in_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "node-a"
    write_default_config(data_dir / "refnode.toml", data_dir=data_dir, port=8702, org_name="Node A")
    config = load_config(None, {"REFNODE_DATA_DIR": str(data_dir)})
    assert config.port == 8702
    assert config.org_name == "Node A"
    assert config.data_dir == data_dir
    assert config.config_path == data_dir / "refnode.toml"


def test_write_default_config_is_commented_toml(tmp_path: Path) -> None:
    path = write_default_config(tmp_path / "refnode.toml", org_name='Smith & "Sons"')
    text = path.read_text()
    assert tomllib.loads(text) == {"org_name": 'Smith & "Sons"'}
    assert "# port = 8701" in text
    assert "# retry_max_delay_s = 3600.0" in text
    assert "# key_passphrase_env = " in text
    assert not stat.S_IMODE(path.stat().st_mode) & 0o022
    config = load_config(path, {})
    assert config.org_name == 'Smith & "Sons"'
    assert config.port == 8701
    with pytest.raises(FileExistsError):
        write_default_config(path)


def test_write_default_config_rejects_bad_overrides(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        write_default_config(tmp_path / "a.toml", colour="blue")
    assert info.value.key == "colour"
    with pytest.raises(ConfigError) as info:
        write_default_config(tmp_path / "b.toml", port=-1)
    assert info.value.key == "port"
    assert not (tmp_path / "a.toml").exists()
    assert not (tmp_path / "b.toml").exists()


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = tmp_path / "refnode.toml"
    path.write_text("prot = 8701\n")
    with pytest.raises(ConfigError, match="prot") as info:
        load_config(path, {})
    assert info.value.key == "prot"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('port = "eighty"\n', "port"),
        ("port = 70000\n", "port"),
        ('log_format = "xml"\n', "log_format"),
        ('log_level = "loud"\n', "log_level"),
        ("delivery_deadline_s = 700000\n", "delivery_deadline_s"),  # over the 7-day envelope age
        ("max_envelope_bytes = 2000000\n", "max_envelope_bytes"),
        ('public_url = "ftp://example.org"\n', "public_url"),
        ("retry_base_delay_s = 10.0\nretry_max_delay_s = 5.0\n", "retry_max_delay_s"),
        ('key_passphrase_env = "my secret passphrase"\n', "key_passphrase_env"),
    ],
)
def test_invalid_value_in_file(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "refnode.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.key == key
    assert key in str(info.value)
    assert str(path) in str(info.value)


def test_invalid_value_in_env_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"REFNODE_DATA_DIR": str(tmp_path), "REFNODE_PORT": "abc"})
    assert info.value.key == "port"
    assert "REFNODE_PORT" in str(info.value)
    assert "'abc'" in str(info.value)


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "refnode.toml"
    path.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, {})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", {})
