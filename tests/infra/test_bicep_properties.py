"""Key properties of infra/main.bicep and its local modules, read with pycep-parser.

checkov checks generic hygiene; these tests pin the decisions that matter for this service
(Flex Consumption + Python 3.13, keyless storage, RBAC-only Key Vault with read-only access for
the app, the app settings the code reads). pycep represents a reference to a parameter or
variable as its bare name, and an interpolated string as the Bicep text ('${name}').
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, cast

import pytest
from pycep import BicepParser

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
MODULES = INFRA / "modules"

KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"


@cache
def parse(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], BicepParser().parse(file_path=path))


def module(name: str) -> dict[str, Any]:
    return parse(MODULES / f"{name}.bicep")


def config(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's body; a conditional resource (`= if (...) {...}`) nests it one level deeper."""
    body = cast(dict[str, Any], resource["config"])
    return cast(dict[str, Any], body["config"]) if "condition" in body else body


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["resources"].items() if res["type"] == resource_type}


def the_resource(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = resources_of_type(template, resource_type)
    assert len(found) == 1, f"expected exactly one {resource_type}, found {sorted(found)}"
    return config(next(iter(found.values())))


def role_id_of(template: dict[str, Any], assignment: dict[str, Any]) -> str:
    """Resolve roleDefinitionId: subscriptionResourceId('...roleDefinitions', <var or literal>)."""
    fn = assignment["properties"]["roleDefinitionId"]["function"]
    assert fn["type"] == "subscription_resource_id"
    assert fn["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    ref = fn["parameters"]["resource_name_1"]
    if isinstance(ref, dict) and "property_accessor" in str(ref):
        # roles.<name> (an object variable)
        operands = ref["operator"]["operands"]
        return str(template["variables"][operands["operand_1"]]["value"][operands["operand_2"]])
    if ref in template.get("variables", {}):
        return str(template["variables"][ref]["value"])
    return str(ref)


def role_assignments(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(principalId reference, role definition GUID, assignment body) for every role assignment."""
    out = []
    for res in resources_of_type(template, ROLE_ASSIGNMENT).values():
        body = config(res)
        out.append((body["properties"]["principalId"], role_id_of(template, body), body))
    return out


def app_settings() -> dict[str, Any]:
    """The app settings the template writes itself; the gateway URL overrides follow them
    (`concat(<these>, gatewayUrlSettings)`, see `test_gateway_urls_are_an_environment_and_overrides`)."""
    site = the_resource(module("functionapp"), "Microsoft.Web/sites")
    joined = site["properties"]["siteConfig"]["appSettings"]["function"]
    assert joined["type"] == "concat" and joined["parameters"]["arg_2"] == "gatewayUrlSettings"
    settings = joined["parameters"]["arg_1"]
    names = [s["name"] for s in settings]
    assert len(names) == len(set(names)), "duplicate app setting names"
    return {s["name"]: s["value"] for s in settings}


# --- main.bicep -----------------------------------------------------------------------------


def test_main_is_subscription_scoped_and_uses_only_local_modules() -> None:
    main = parse(INFRA / "main.bicep")
    assert main["globals"]["scope"]["value"] == "subscription"
    assert main["modules"], "main.bicep should compose local modules"
    for name, mod in main["modules"].items():
        assert mod["type"] == "local", f"module {name} is not a local module (checkov cannot see registry modules)"
        assert (INFRA / mod["detail"]["path"]).is_file(), f"module {name}: {mod['detail']['path']} missing"
    for path in INFRA.rglob("*.bicep"):
        assert not re.search(r"^\s*module\s+\w+\s+'(br|ts)[:/]", path.read_text(), re.M), f"{path}: registry module"


def test_main_parameters() -> None:
    params = parse(INFRA / "main.bicep")["parameters"]
    for name in ("environmentName", "location", "gatewayEnvironment", "gatewayUrlOverrides",
                 "maximumInstanceCount", "instanceMemoryMB", "principalId"):
        assert name in params, name
    assert params["principalId"]["default"] == "", "principalId is optional"
    allowed = [d["argument"] for d in params["instanceMemoryMB"]["decorators"] if d["type"] == "allowed"]
    assert allowed == [[512, 2048, 4096]]


def test_main_wires_identity_vault_and_table_into_the_app() -> None:
    main = parse(INFRA / "main.bicep")
    mods = main["modules"]
    app_params = mods["functionApp"]["config"]["params"]

    def output_of(ref: Any) -> tuple[str, str]:
        operands = ref["operator"]["operands"]
        return operands["operand_1"], operands["operand_2"]["operator"]["operands"]["operand_2"]

    assert output_of(app_params["identityClientId"]) == ("identity", "clientId")
    assert output_of(app_params["keyVaultUri"]) == ("keyVault", "uri")
    assert output_of(app_params["idempotencyTableName"]) == ("storage", "idempotencyTableName")
    assert output_of(mods["keyVault"]["config"]["params"]["appPrincipalId"]) == ("identity", "principalId")
    assert output_of(mods["storage"]["config"]["params"]["appPrincipalId"]) == ("identity", "principalId")
    assert output_of(mods["monitoring"]["config"]["params"]["appPrincipalId"]) == ("identity", "principalId")
    assert main["variables"]["idempotencyTableName"]["value"] == "idempotency"
    assert mods["storage"]["config"]["params"]["idempotencyTableName"] == "idempotencyTableName"


# --- plan and function app ------------------------------------------------------------------


def test_plan_is_flex_consumption_linux() -> None:
    plan = the_resource(module("functionapp"), "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True


def test_function_app_runtime_scale_and_hardening() -> None:
    fa = module("functionapp")
    site = the_resource(fa, "Microsoft.Web/sites")
    props = site["properties"]
    assert site["kind"] == "functionapp,linux"
    assert props["httpsOnly"] is True
    cfg = props["functionAppConfig"]
    assert cfg["runtime"] == {"name": "python", "version": "3.13"}
    scale = cfg["scaleAndConcurrency"]
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert scale["instanceMemoryMB"] == "instanceMemoryMB"
    assert scale["triggers"]["http"]["perInstanceConcurrency"] == "httpPerInstanceConcurrency"
    assert fa["parameters"]["httpPerInstanceConcurrency"]["default"] == 16
    storage = cfg["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    site_config = props["siteConfig"]
    assert site_config["minTlsVersion"] == "1.2"
    assert site_config["http20Enabled"] is True
    assert "ftpsState" not in site_config, "Flex Consumption rejects ftpsState"
    assert "alwaysOn" not in site_config and "linuxFxVersion" not in site_config
    assert site["identity"]["type"] == "UserAssigned"
    tags = site["tags"]["function"]["parameters"]["arg_2"]
    assert tags == {"'azd-service-name'": "api"}


def test_app_settings_the_code_reads() -> None:
    settings = app_settings()
    expected_literals = {
        "AzureWebJobsStorage__credential": "managedidentity",
        "CREDENTIAL_SOURCE": "keyvault",
        "ENABLE_SIMULATOR": "false",
        "ALLOW_REQUEST_CREDENTIALS": "false",
        "GATEWAY_TIMEOUT_SECONDS": "40",
        "GATEWAY_CONNECT_TIMEOUT_SECONDS": "5",
        "CREDENTIAL_CACHE_TTL_SECONDS": "300",
        "IDEMPOTENCY_STORE": "table",
        "IDEMPOTENCY_HMAC_SECRET_NAME": "idempotency-hmac-key",
        "RECONCILE_AFTER_SECONDS": "600",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=${identityClientId};Authorization=AAD",
    }
    for name, value in expected_literals.items():
        assert settings.get(name) == value, name
    expected_refs = {
        "AzureWebJobsStorage__clientId": "identityClientId",
        "AzureWebJobsStorage__blobServiceUri": "storageBlobEndpoint",
        "AzureWebJobsStorage__queueServiceUri": "storageQueueEndpoint",
        "AzureWebJobsStorage__tableServiceUri": "storageTableEndpoint",
        "AZURE_CLIENT_ID": "identityClientId",
        "KEY_VAULT_URL": "keyVaultUri",
        "GATEWAY_ENVIRONMENT": "gatewayEnvironment",
        "IDEMPOTENCY_TABLE_NAME": "idempotencyTableName",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "applicationInsightsConnectionString",
    }
    for name, ref in expected_refs.items():
        assert settings.get(name) == ref, name
    # Not valid or not wanted on Flex Consumption / keyless storage (platform.md 7 and 8).
    for forbidden in ("AzureWebJobsStorage", "AzureWebJobsStorage__accountName", "FUNCTIONS_WORKER_RUNTIME",
                      "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_PROCESS_COUNT", "WEBSITE_RUN_FROM_PACKAGE",
                      "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE",
                      "SCM_DO_BUILD_DURING_DEPLOYMENT", "LOCAL_CREDENTIALS_FILE", "IDEMPOTENCY_HMAC_KEY"):
        assert forbidden not in settings, forbidden


# --- storage --------------------------------------------------------------------------------


def test_storage_is_keyless_and_tls12() -> None:
    st = module("storage")
    props = the_resource(st, "Microsoft.Storage/storageAccounts")["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowBlobPublicAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True
    container = the_resource(st, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert container["properties"]["publicAccess"] == "None"
    the_resource(st, "Microsoft.Storage/storageAccounts/tableServices")
    table = the_resource(st, "Microsoft.Storage/storageAccounts/tableServices/tables")
    assert table["name"] == "idempotencyTableName"


def test_storage_roles_for_the_app_identity() -> None:
    st = module("storage")
    app_roles = {role for principal, role, _ in role_assignments(st) if principal == "appPrincipalId"}
    assert app_roles == {STORAGE_BLOB_DATA_OWNER, STORAGE_TABLE_DATA_CONTRIBUTOR, STORAGE_QUEUE_DATA_CONTRIBUTOR}
    for principal, _, body in role_assignments(st):
        assert body["scope"] == "storage"
        expected = "ServicePrincipal" if principal == "appPrincipalId" else "userPrincipalType"
        assert body["properties"]["principalType"] == expected


def test_the_deployer_gets_no_blob_role() -> None:
    # A Flex Consumption deployment goes through the app's publish endpoint; the app writes the
    # package with its own identity, so the deployer needs no data role on the blobs.
    assignments = role_assignments(module("storage"))
    deployer_roles = {role for principal, role, _ in assignments if principal == "userPrincipalId"}
    assert deployer_roles == {STORAGE_TABLE_DATA_CONTRIBUTOR}


@pytest.mark.parametrize("name", ["storage", "keyvault", "monitoring", "functionapp", "identity"])
def test_the_deployers_principal_type_is_a_parameter(name: str) -> None:
    """A service principal provisioning (CI, azd pipeline config) must not be declared a 'User'."""
    template = module(name)
    for principal, _, body in role_assignments(template):
        principal_type = body["properties"]["principalType"]
        if principal == "appPrincipalId":
            assert principal_type == "ServicePrincipal"
        else:
            assert principal == "userPrincipalId" and principal_type == "userPrincipalType"
            param = template["parameters"]["userPrincipalType"]
            allowed = [d["argument"] for d in param["decorators"] if d["type"] == "allowed"]
            assert allowed == [["User", "ServicePrincipal", "Group"]]
    main = parse(INFRA / "main.bicep")
    assert main["parameters"]["principalType"]["default"] == "User"
    for mod in ("storage", "keyVault"):
        assert main["modules"][mod]["config"]["params"]["userPrincipalType"] == "principalType"


def test_storage_sku_is_a_parameter_that_works_in_every_flex_region() -> None:
    main = parse(INFRA / "main.bicep")
    param = main["parameters"]["storageSkuName"]
    assert param["default"] == "Standard_LRS", "ZRS is missing in some Flex regions: provisioning would fail there"
    allowed = next(d["argument"] for d in param["decorators"] if d["type"] == "allowed")
    assert {"Standard_LRS", "Standard_ZRS"} <= set(allowed)
    assert main["modules"]["storage"]["config"]["params"]["skuName"] == "storageSkuName"
    st = module("storage")
    assert the_resource(st, "Microsoft.Storage/storageAccounts")["sku"]["name"] == "skuName"
    assert st["parameters"]["skuName"]["default"] == "Standard_LRS"


def test_azd_parameters_file_matches_main_bicep() -> None:
    params = parse(INFRA / "main.bicep")["parameters"]
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(values) <= set(params), sorted(set(values) - set(params))
    required = {name for name, p in params.items() if p.get("default") is None}
    assert required <= set(values), sorted(required - set(values))
    assert values["storageSkuName"]["value"] == "${AZURE_STORAGE_SKU=Standard_LRS}"
    assert values["principalType"]["value"] == "${AZURE_PRINCIPAL_TYPE=User}"
    assert values["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"


def test_gateway_urls_are_an_environment_and_overrides() -> None:
    """No parameter or app setting per gateway: the environment (test or live) picks each gateway's
    declared URL, and overrides are NAME=URL pairs that become app settings as they are."""
    main = parse(INFRA / "main.bicep")
    params = main["parameters"]
    for template in (params, module("functionapp")["parameters"]):
        allowed = next(d["argument"] for d in template["gatewayEnvironment"]["decorators"] if d["type"] == "allowed")
        assert allowed == ["test", "live"]
    assert params["gatewayEnvironment"]["default"] == "test"
    assert params["gatewayUrlOverrides"]["default"] == ""
    app_params = main["modules"]["functionApp"]["config"]["params"]
    assert (app_params["gatewayEnvironment"], app_params["gatewayUrlOverrides"]) == (
        "gatewayEnvironment", "gatewayUrlOverrides",
    )
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert values["gatewayEnvironment"]["value"] == "${GATEWAY_ENVIRONMENT=test}"
    assert values["gatewayUrlOverrides"]["value"] == "${GATEWAY_URL_OVERRIDES}"
    variables = module("functionapp")["variables"]
    entries = variables["gatewayUrlEntries"]["value"]["operator"]
    assert entries["type"] == "conditional" and entries["operands"]["true_value"] == []
    assert entries["operands"]["false_value"]["function"]["parameters"] == {
        "input_string": "gatewayUrlOverrides", "delimiter": ";",
    }
    loop = variables["gatewayUrlSettings"]["value"]
    assert loop["loop_type"]["detail"] == {"item_name": "entry", "array_name": "gatewayUrlEntries"}
    name, value = loop["config"]["name"]["function"], loop["config"]["value"]["function"]
    # NAME is what comes before the first '=', the URL all after it (a URL may hold '=' itself).
    assert name["type"] == value["type"] == "trim"
    cut_name = name["parameters"]["string_to_trim"]["function"]["parameters"]
    cut_value = value["parameters"]["string_to_trim"]["function"]["parameters"]
    assert (cut_name["string_to_parse"], cut_name["start_index"]) == ("entry", 0)
    assert cut_name["length"]["function"]["parameters"] == {"string_to_search": "entry", "string_to_find": "="}
    assert cut_value["string_to_parse"] == "entry" and cut_value["length"] is None
    assert cut_value["start_index"]["operator"]["operands"]["operand_2"] == 1


def test_no_cors_on_the_flex_site() -> None:
    site = the_resource(module("functionapp"), "Microsoft.Web/sites")
    assert "cors" not in site["properties"]["siteConfig"], "the monolith calls server to server; no browser origin"


# --- Key Vault ------------------------------------------------------------------------------


def test_key_vault_is_rbac_only_and_recoverable() -> None:
    vault = the_resource(module("keyvault"), "Microsoft.KeyVault/vaults")
    props = vault["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["softDeleteRetentionInDays"] == 90
    assert props["enablePurgeProtection"] is True
    assert props["sku"]["name"] == "standard"
    assert "accessPolicies" not in props


def test_app_identity_gets_only_key_vault_secrets_user() -> None:
    kv = module("keyvault")
    app = [(role, body) for principal, role, body in role_assignments(kv) if principal == "appPrincipalId"]
    assert len(app) == 1, "the app identity must have exactly one role on the vault"
    role, body = app[0]
    assert role == KEY_VAULT_SECRETS_USER
    assert body["scope"] == "vault"
    assert body["properties"]["principalType"] == "ServicePrincipal"
    # No other module grants the app identity anything on a vault, and nothing is granted at a
    # wider scope (resource group / subscription) from main.bicep.
    main = parse(INFRA / "main.bicep")
    assert not resources_of_type(main, ROLE_ASSIGNMENT)
    for other in ("storage", "monitoring", "functionapp", "identity"):
        for _, _, body in role_assignments(module(other)):
            assert body["scope"] != "vault"
        assert KEY_VAULT_SECRETS_USER not in {r for _, r, _ in role_assignments(module(other))}


# --- monitoring -----------------------------------------------------------------------------


def test_application_insights_uses_entra_id_only() -> None:
    mon = module("monitoring")
    appi = the_resource(mon, "Microsoft.Insights/components")
    assert appi["properties"]["DisableLocalAuth"] is True
    assert appi["properties"]["WorkspaceResourceId"]
    roles = [(p, r) for p, r, _ in role_assignments(mon)]
    assert roles == [("appPrincipalId", MONITORING_METRICS_PUBLISHER)]


# --- checkov skips --------------------------------------------------------------------------


SKIP_RE = re.compile(r"checkov:skip=(?P<id>CKV2?_[A-Z0-9_]+)(?P<rest>.*)")


@pytest.mark.parametrize("path", sorted(INFRA.rglob("*.bicep")), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_checkov_skip_has_a_reason(path: Path) -> None:
    for line in path.read_text().splitlines():
        match = SKIP_RE.search(line)
        if match:
            assert line.lstrip().startswith("//"), line
            reason = match["rest"].lstrip(":").strip()
            assert len(reason) >= 30, f"{path.name}: {match['id']} needs a real justification"


# --- alerts ---------------------------------------------------------------------------------

SCHEDULED_QUERY_RULE = "Microsoft.Insights/scheduledQueryRules"
TELEMETRY_DOC = REPO_ROOT / "docs" / "telemetry.md"

# rule -> (query file, severity, threshold, operator, measure column or None for a row count, window)
ALERT_RULES: dict[str, tuple[str, int, Any, str, str | None, str]] = {
    "unknownOutcomes": (
        "unknown-outcomes.kql", 1, "unknownOutcomeThreshold", "GreaterThanOrEqual", "unknowns", "PT15M"
    ),
    "needsAttention": ("needs-attention.kql", 1, 0, "GreaterThan", "records", "PT15M"),
    "serverErrors": ("server-errors.kql", 2, "serverErrorThreshold", "GreaterThanOrEqual", "errors", "PT15M"),
    "credentialFailures": ("credential-failures.kql", 2, 0, "GreaterThan", "failures", "PT15M"),
    "gatewayLatency": ("gateway-latency.kql", 3, 0, "GreaterThan", None, "PT1H"),
    "gatewayDeclines": ("gateway-declines.kql", 2, 0, "GreaterThan", None, "PT1H"),
}


def alert_query(rule: dict[str, Any]) -> tuple[str, str]:
    """(file name, text) of a rule's query, which must be loadTextContent of a file next to the module."""
    (criterion,) = rule["properties"]["criteria"]["allOf"]
    function = criterion["query"]["function"]
    assert function["type"] == "load_text_content"
    path = MODULES / function["parameters"]["file_path"]
    assert path.is_file(), path
    return path.name, path.read_text()


def test_every_alert_rule_is_an_enabled_log_alert_on_application_insights() -> None:
    alerts = module("alerts")
    rules = {name: config(res) for name, res in resources_of_type(alerts, SCHEDULED_QUERY_RULE).items()}
    assert set(rules) == set(ALERT_RULES)
    for name, rule in rules.items():
        query_file, severity, threshold, operator, measure, window = ALERT_RULES[name]
        props = rule["properties"]
        assert rule["kind"] == "LogAlert", name
        assert props["enabled"] is True, name
        assert props["severity"] == severity, name
        assert props["scopes"] == ["applicationInsightsId"], name
        assert props["actions"] == {"actionGroups": "actionGroups"}, name
        assert props["windowSize"] == window, name
        assert props["autoMitigate"] is True, name
        (criterion,) = props["criteria"]["allOf"]
        assert alert_query(rule)[0] == query_file, name
        assert (criterion["operator"], criterion["threshold"]) == (operator, threshold), name
        if measure is None:
            assert criterion["timeAggregation"] == "Count" and "metricMeasureColumn" not in criterion, name
        else:
            assert (criterion["timeAggregation"], criterion["metricMeasureColumn"]) == ("Total", measure), name
            assert f"summarize {measure} = " in alert_query(rule)[1], f"{name}: the query must produce {measure}"
        assert criterion["failingPeriods"] == {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1}
    for name in ("gatewayLatency", "gatewayDeclines"):
        # The comparison with the gateway's normal level reads two days, past the one-hour window.
        assert rules[name]["properties"]["overrideQueryTimeRange"] == "P2D"
    assert alerts["parameters"]["unknownOutcomeThreshold"]["default"] == 3
    assert alerts["parameters"]["serverErrorThreshold"]["default"] == 5


def test_alert_queries_read_the_names_telemetry_publishes() -> None:
    rules = {name: config(res) for name, res in resources_of_type(module("alerts"), SCHEDULED_QUERY_RULE).items()}
    queries = {name: alert_query(rule)[1] for name, rule in rules.items()}
    expectations = {
        "unknownOutcomes": ["customMetrics", '"paymentgateway.outcome.unknown"', "by gateway"],
        "needsAttention": ['"paymentgateway.reconcile.needs_attention"', "traces", "reconcile_needs_attention",
                           '\\"level\\": \\"ERROR\\"'],
        "serverErrors": ["requests", "toint(resultCode) >= 500", 'resultCode != "502"', 'name != "Health"'],
        "credentialFailures": ['"paymentgateway.credential.failures"', 'reason != "not_found"',
                               '"paymentgateway.calls"', '"credentials_malformed"'],
        "gatewayLatency": ["dependencies", 'name startswith "gateway "', "percentile(duration, 95)", "ago(1h)",
                           "ago(2d)", "by gateway = target"],
        "gatewayDeclines": ['"paymentgateway.calls"', '"declined"', "ago(1h)", "ago(2d)", "replayed"],
    }
    for name, fragments in expectations.items():
        for fragment in fragments:
            assert fragment in queries[name], f"{name}: {fragment!r} missing"
    published = set(re.findall(r"`(paymentgateway\.[a-z_.]+)`", TELEMETRY_DOC.read_text()))
    for name, query in queries.items():
        for metric in re.findall(r'"(paymentgateway\.[a-z_.]+)"', query):
            assert metric in published, f"{name} reads {metric}, which docs/telemetry.md does not publish"


def test_alerts_notify_the_given_action_group_or_one_created_for_an_email() -> None:
    alerts = module("alerts")
    assert alerts["parameters"]["actionGroupId"]["default"] == ""
    assert alerts["parameters"]["alertEmail"]["default"] == ""
    create = alerts["variables"]["createActionGroup"]["value"]["operator"]
    assert create["type"] == "and"
    assert create["operands"]["operand_1"]["function"]["parameters"]["item_to_test"] == "actionGroupId"
    negated = create["operands"]["operand_2"]["operator"]
    assert negated["type"] == "not"
    assert negated["operands"]["bool_value"]["function"]["parameters"]["item_to_test"] == "alertEmail"
    # empty(actionGroupId) ? (createActionGroup ? [emailActionGroup.id] : []) : [actionGroupId]
    chosen = alerts["variables"]["actionGroups"]["value"]["operator"]["operands"]
    assert chosen["condition"]["function"]["parameters"]["item_to_test"] == "actionGroupId"
    assert chosen["false_value"] == ["actionGroupId"]
    inner = chosen["true_value"]["operator"]["operands"]
    assert inner["condition"] == "createActionGroup" and inner["false_value"] == []
    assert inner["true_value"][0]["operator"]["operands"] == {"operand_1": "emailActionGroup", "operand_2": "id"}
    (group,) = resources_of_type(alerts, "Microsoft.Insights/actionGroups").values()
    assert group["config"]["condition"] == "createActionGroup"
    body = config(group)
    assert body["location"] == "Global"
    assert len(body["properties"]["groupShortName"]) <= 12
    (receiver,) = body["properties"]["emailReceivers"]
    assert receiver["emailAddress"] == "alertEmail"


def test_main_wires_alerts_and_the_dashboard_to_application_insights() -> None:
    main = parse(INFRA / "main.bicep")
    params = main["parameters"]
    for name, default in (("alertActionGroupId", ""), ("alertEmail", ""), ("alertUnknownOutcomeThreshold", 3),
                          ("alertServerErrorThreshold", 5)):
        assert params[name]["default"] == default, name
    mods = main["modules"]
    for mod in ("alerts", "dashboard"):
        ref = mods[mod]["config"]["params"]["applicationInsightsId"]["operator"]["operands"]
        assert ref["operand_1"] == "monitoring"
        assert ref["operand_2"]["operator"]["operands"]["operand_2"] == "applicationInsightsId"
    alert_params = mods["alerts"]["config"]["params"]
    assert alert_params["actionGroupId"] == "alertActionGroupId"
    assert alert_params["alertEmail"] == "alertEmail"
    assert alert_params["unknownOutcomeThreshold"] == "alertUnknownOutcomeThreshold"
    assert alert_params["serverErrorThreshold"] == "alertServerErrorThreshold"
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert values["alertActionGroupId"]["value"] == "${ALERT_ACTION_GROUP_ID}"
    assert values["alertEmail"]["value"] == "${ALERT_EMAIL}"
    assert values["alertUnknownOutcomeThreshold"]["value"] == "${ALERT_UNKNOWN_OUTCOME_THRESHOLD=3}"
    assert values["alertServerErrorThreshold"]["value"] == "${ALERT_SERVER_ERROR_THRESHOLD=5}"


# --- dashboard ------------------------------------------------------------------------------


def test_the_dashboard_is_a_shared_workbook_over_application_insights() -> None:
    workbook = the_resource(module("workbook"), "Microsoft.Insights/workbooks")
    assert workbook["kind"] == "shared"
    props = workbook["properties"]
    assert props["category"] == "workbook"
    assert props["sourceId"] == "applicationInsightsId"
    replaced = props["serializedData"]["function"]
    assert replaced["type"] == "replace"
    assert replaced["parameters"]["new_string"] == "applicationInsightsId"
    loaded = replaced["parameters"]["original_string"]["function"]
    assert loaded["type"] == "load_text_content"
    content = (MODULES / loaded["parameters"]["file_path"]).read_text()
    assert replaced["parameters"]["old_string"] in content
    # A stable GUID name: a redeploy updates the same workbook instead of adding another.
    assert workbook["name"]["function"]["type"] == "guid"
