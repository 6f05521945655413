// Payment gateway function app (Python 3.13, v1 model) on Flex Consumption.
// Deploy with `azd up` (azure.yaml at the repo root) or `az deployment sub create`.
// Resources are written out in local modules (no br/public registry modules) so checkov scans them.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used to name the resource group and derive resource names.')
param environmentName string

@minLength(1)
@description('Azure region for all resources (must offer Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Which URLs the gateways are called at: test (each gateway sandbox) or live.')
@allowed([
  'test'
  'live'
])
param gatewayEnvironment string = 'test'

@description('Gateway URL overrides as app settings, NAME=URL pairs separated by semicolons; each NAME is the setting a gateway declares (its url_setting), e.g. a merchant site URL in production.')
param gatewayUrlOverrides string = ''

@description('Maximum number of Flex Consumption instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Concurrent HTTP requests per instance (functionAppConfig.scaleAndConcurrency.triggers.http.perInstanceConcurrency).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

@description('Optional object id of the deploying principal (azd: AZURE_PRINCIPAL_ID): gets Key Vault Secrets Officer (to seed the HMAC key and rotate secrets) and Storage Table Data Contributor. Empty: none.')
param principalId string = ''

@description('Type of principalId (azd: AZURE_PRINCIPAL_TYPE, set by the preprovision hook from azd\'s sign-in). A service principal (CI, azd pipeline config) must say ServicePrincipal, or ARM refuses the role assignments with UnmatchedPrincipalType.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Storage replication (azd: AZURE_STORAGE_SKU). LRS is offered in every Flex Consumption region; choose Standard_ZRS where the region offers it, to keep host storage and the idempotency table up through a zone failure.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Resource id of an existing action group the alert rules notify (azd: ALERT_ACTION_GROUP_ID). Empty: one is created for alertEmail.')
param alertActionGroupId string = ''

@description('Email address for a new action group (azd: ALERT_EMAIL), used when alertActionGroupId is empty. Both empty: the alerts fire in the portal only.')
param alertEmail string = ''

@description('New unknown outcomes for one gateway in 15 minutes that raise an alert (azd: ALERT_UNKNOWN_OUTCOME_THRESHOLD).')
@minValue(1)
param alertUnknownOutcomeThreshold int = 3

@description('5xx answers (502 excepted) in 15 minutes that raise an alert (azd: ALERT_SERVER_ERROR_THRESHOLD).')
@minValue(1)
param alertServerErrorThreshold int = 5

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-api-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var idempotencyTableName = 'idempotency'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    idempotencyTableName: idempotencyTableName
    skuName: storageSkuName
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    nameSuffix: resourceToken
    actionGroupId: alertActionGroupId
    alertEmail: alertEmail
    unknownOutcomeThreshold: alertUnknownOutcomeThreshold
    serverErrorThreshold: alertServerErrorThreshold
  }
}

module dashboard 'modules/workbook.bicep' = {
  name: 'dashboard'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultUri: keyVault.outputs.uri
    gatewayEnvironment: gatewayEnvironment
    gatewayUrlOverrides: gatewayUrlOverrides
    idempotencyTableName: storage.outputs.idempotencyTableName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
  }
}

// azd stores these outputs in the environment (.azure/<env>/.env).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URL string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
