"""The generated SQL migrations: one per registered gateway, equal to its declared fields, idempotent."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from gateways.base import CredentialField, Gateway
from gateways.registry import gateway_types
from tests.support import UncalledGateway
from tools import migrations

SQL_DIR = migrations.DEFAULT_OUT
REGISTERED = {
    type_id: cls for type_id, cls in gateway_types().items() if type_id not in migrations.LOCAL_ONLY_TYPE_IDS
}


class EightFieldGateway(UncalledGateway):
    type_id = 77
    name = "Eight"
    credential_fields = tuple(CredentialField(f"f{n}", f"F{n}", n) for n in range(1, 9))


class QuotedGateway(UncalledGateway):
    type_id = 78
    name = "O'Brien Pay 100%"
    credential_fields = (CredentialField("key", "Merchant's Key", 2), CredentialField("id", "Id", 1))


@dataclass
class Row:
    """What a script's guarded INSERT writes and what its guard and conflict check look at."""

    table: str
    columns: list[str]
    values: list[object]
    guard: exp.Exists
    conflict_check: exp.IfBlock

    @property
    def record(self) -> dict[str, object]:
        return dict(zip(self.columns, self.values, strict=True))


def parse(text: str) -> list[exp.Expression]:
    return sqlglot.parse(text, read="tsql", error_level=sqlglot.ErrorLevel.RAISE)  # type: ignore[return-value]


def table_name(table: exp.Table) -> str:
    return f"{table.db}.{table.name}"


def literal(node: exp.Expression) -> object:
    if isinstance(node, exp.National):
        return node.this
    assert isinstance(node, exp.Literal) and not node.is_string, f"unexpected value {node!r}"
    return int(node.this)


def own_statements(block: exp.IfBlock) -> list[exp.Expression]:
    return list(block.args["true"].expressions)


def read_row(text: str) -> Row:
    statements = parse(text)
    assert all(isinstance(s, exp.IfBlock) for s in statements), [type(s).__name__ for s in statements]
    # sqlglot's T-SQL parser reads whatever follows an IF's END into that IF's block, so the second
    # IF shows up nested in the first; each IF is found by what its own block does.
    ifs = [node for s in statements for node in s.find_all(exp.IfBlock)]
    guarded = [i for i in ifs if any(isinstance(e, exp.Insert) for e in own_statements(i))]
    checks = [
        i
        for i in ifs
        if any(isinstance(e, exp.Anonymous) and e.name.upper() == "RAISERROR" for e in own_statements(i))
    ]
    assert len(ifs) == 2 and len(guarded) == 1 and len(checks) == 1
    insert = next(e for e in own_statements(guarded[0]) if isinstance(e, exp.Insert))
    schema = insert.this
    assert isinstance(schema, exp.Schema)
    values = insert.expression
    assert isinstance(values, exp.Values) and len(values.expressions) == 1
    condition = guarded[0].this
    assert isinstance(condition, exp.Not) and isinstance(condition.this, exp.Exists), "guard must be IF NOT EXISTS"
    return Row(
        table=table_name(schema.this),
        columns=[identifier.name for identifier in schema.expressions],
        values=[literal(value) for value in values.expressions[0].expressions],
        guard=condition.this,
        conflict_check=checks[0],
    )


def equalities(where: exp.Expression) -> dict[str, set[object]]:
    """Column = value comparisons anywhere in `where`, by column."""
    found: dict[str, set[object]] = {}
    for eq in where.find_all(exp.EQ):
        if isinstance(eq.this, exp.Column):
            found.setdefault(eq.this.name, set()).add(literal(eq.expression))
    return found


def expected_record(cls: type[Gateway]) -> dict[str, object]:
    record: dict[str, object] = {migrations.ID_COLUMN: cls.type_id, migrations.NAME_COLUMN: cls.name}
    for number, spec in enumerate((spec for spec in cls.credential_fields if spec.required), start=1):
        record[f"Field{number}"] = spec.label
        record[f"DisplayOrder{number}"] = spec.display_order
    return record


def committed(cls: type[Gateway]) -> str:
    path = SQL_DIR / migrations.script_name(cls)
    assert path.is_file(), f"{path.name} is missing: run python -m tools.migrations"
    return path.read_text(encoding="utf-8")


def test_the_real_gateways_are_registered() -> None:
    assert {1, 2} <= set(REGISTERED), "Payload (1) and CardConnect (2) are expected in the registry"


@pytest.mark.parametrize("cls", REGISTERED.values(), ids=lambda cls: cls.name)
def test_each_gateway_has_its_script_with_its_fields(cls: type[Gateway]) -> None:
    row = read_row(committed(cls))
    assert row.table == migrations.TABLE
    assert row.record == expected_record(cls)
    assert list(row.record) == list(expected_record(cls)), "columns in FieldN/DisplayOrderN order"


@pytest.mark.parametrize("cls", REGISTERED.values(), ids=lambda cls: cls.name)
def test_each_script_is_guarded_by_its_own_id_and_name(cls: type[Gateway]) -> None:
    row = read_row(committed(cls))
    select = row.guard.this
    assert isinstance(select, exp.Select)
    assert table_name(select.args["from_"].this) == migrations.TABLE
    where = select.args["where"].this
    assert isinstance(where, exp.Or), "no row with this id or this name"
    assert equalities(where) == {
        migrations.ID_COLUMN: {row.record[migrations.ID_COLUMN]},
        migrations.NAME_COLUMN: {row.record[migrations.NAME_COLUMN]},
    }


@pytest.mark.parametrize("cls", REGISTERED.values(), ids=lambda cls: cls.name)
def test_each_script_reports_a_conflicting_row(cls: type[Gateway]) -> None:
    check = read_row(committed(cls)).conflict_check
    assert isinstance(check.this, exp.Exists)
    assert equalities(check.this) == {migrations.ID_COLUMN: {cls.type_id}, migrations.NAME_COLUMN: {cls.name}}
    assert {n.sql() for n in check.this.find_all(exp.NEQ)} == {
        f"{migrations.ID_COLUMN} <> {cls.type_id}",
        f"{migrations.NAME_COLUMN} <> N'{cls.name}'",
    }
    raised = [f for f in check.find_all(exp.Anonymous) if f.name.upper() == "RAISERROR"]
    assert len(raised) == 1 and literal(raised[0].expressions[1]) == 16


def test_every_script_on_disk_parses_as_tsql() -> None:
    scripts = sorted(SQL_DIR.glob("*.sql"))
    assert scripts
    for path in scripts:
        statements = parse(path.read_text(encoding="utf-8"))
        # sqlglot has no model of SET IDENTITY_INSERT and keeps it as a raw command; anything else
        # kept raw would be SQL it could not understand.
        raw = [c for s in statements for c in s.find_all(exp.Command)]
        assert all(c.this == "SET" and str(c.expression).strip().startswith("IDENTITY_INSERT ") for c in raw), path.name


def test_identity_insert_is_switched_on_and_off_around_the_insert() -> None:
    text = committed(REGISTERED[1])
    guarded = next(i for s in parse(text) for i in s.find_all(exp.IfBlock) if isinstance(i.this, exp.Not))
    statements = own_statements(guarded)
    assert statements[0].sql("tsql") == f"SET IDENTITY_INSERT {migrations.TABLE} ON"
    assert isinstance(statements[1], exp.Insert)
    # sqlglot misreads the OFF form's keyword as an alias, so read that one back as written.
    assert isinstance(statements[2], exp.Set)
    assert f"    SET IDENTITY_INSERT {migrations.TABLE} OFF;\nEND;\n" in text


def test_the_simulator_gets_no_migration() -> None:
    assert 900 in gateway_types()
    scripts = migrations.generate()
    assert not [name for name in scripts if name.startswith("V0900")]
    assert set(scripts) == {migrations.script_name(cls) for cls in REGISTERED.values()}


def test_names_are_ordered_by_type_id() -> None:
    assert migrations.script_name(REGISTERED[1]) == "V0001__gateway_type_payload.sql"
    assert migrations.script_name(REGISTERED[2]) == "V0002__gateway_type_cardconnect.sql"


def test_quotes_are_escaped_and_values_survive_parsing() -> None:
    text = migrations.render(QuotedGateway)
    assert "N'O''Brien Pay 100%'" in text
    assert read_row(text).record == expected_record(QuotedGateway)
    assert "100%%" in text  # RAISERROR's message is a format string


def test_more_than_seven_fields_are_refused() -> None:
    with pytest.raises(migrations.MigrationError, match=r"8 credential fields.*at most 7"):
        migrations.render(EightFieldGateway)


def test_the_cli_refuses_more_than_seven_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert migrations.main(["--out", str(tmp_path)], types={77: EightFieldGateway}) == 2
    assert "EightFieldGateway" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_duplicate_display_orders_are_refused() -> None:
    class Twice(UncalledGateway):
        type_id = 79
        name = "Twice"
        credential_fields = (CredentialField("a", "A", 1), CredentialField("b", "B", 1))

    with pytest.raises(migrations.MigrationError, match="display order"):
        migrations.render(Twice)


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    out = tmp_path / "sql"
    shutil.copytree(SQL_DIR, out)
    return out


def test_check_passes_on_the_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert migrations.main(["--check", "--out", str(SQL_DIR)]) == 0


def test_check_passes_on_a_copy(sql_copy: Path) -> None:
    assert migrations.main(["--check", "--out", str(sql_copy)]) == 0


def test_check_fails_when_a_script_is_altered(sql_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sql_copy / migrations.script_name(REGISTERED[1])
    path.write_text(path.read_text(encoding="utf-8").replace("N'ApiKey'", "N'APIKey'"), encoding="utf-8")
    assert migrations.main(["--check", "--out", str(sql_copy)]) == 1
    assert f"{path.name}: differs" in capsys.readouterr().err


def test_check_fails_when_a_script_is_missing_or_stale(sql_copy: Path) -> None:
    (sql_copy / migrations.script_name(REGISTERED[2])).unlink()
    assert migrations.main(["--check", "--out", str(sql_copy)]) == 1
    migrations.main(["--out", str(sql_copy)])
    assert migrations.main(["--check", "--out", str(sql_copy)]) == 0
    (sql_copy / "V0003__gateway_type_gone.sql").write_text("-- old\n", encoding="utf-8")
    assert migrations.main(["--check", "--out", str(sql_copy)]) == 1


def test_check_changes_nothing(sql_copy: Path) -> None:
    path = sql_copy / migrations.script_name(REGISTERED[1])
    path.write_text("altered\n", encoding="utf-8")
    migrations.main(["--check", "--out", str(sql_copy)])
    assert path.read_text(encoding="utf-8") == "altered\n"


def test_generating_writes_the_committed_bytes(tmp_path: Path) -> None:
    assert migrations.main(["--out", str(tmp_path)]) == 0
    for path in SQL_DIR.glob("V*__gateway_type_*.sql"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


def test_an_option_of_the_secret_gets_no_column() -> None:
    class WithOption(UncalledGateway):
        type_id = 4321
        name = "WithOption"
        credential_fields = (CredentialField("key", "Key", 1), CredentialField("policy", "Policy", 2, required=False))

    row = read_row(migrations.render(WithOption))
    assert row.record == {migrations.ID_COLUMN: 4321, migrations.NAME_COLUMN: "WithOption", "Field1": "Key",
                          "DisplayOrder1": 1}
