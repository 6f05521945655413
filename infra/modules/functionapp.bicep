// Flex Consumption (FC1) plan + Linux Python 3.13 function app running as a user-assigned identity.
// Host storage, deployment package, Key Vault and Application Insights are all reached with Entra ID.

@description('Function app name.')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Azure region.')
param location string

@description('Tags applied to the plan and the app (the app additionally gets azd-service-name).')
param tags object = {}

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

@description('Storage blob endpoint, e.g. https://<account>.blob.core.windows.net/.')
param storageBlobEndpoint string

@description('Storage queue endpoint.')
param storageQueueEndpoint string

@description('Storage table endpoint.')
param storageTableEndpoint string

@description('Blob container for the deployment package.')
param deploymentContainerName string

@description('Application Insights connection string.')
param applicationInsightsConnectionString string

@description('Key Vault URI, e.g. https://kv-xxx.vault.azure.net/.')
param keyVaultUri string

@description('Which URLs the gateways are called at: test or live.')
@allowed([
  'test'
  'live'
])
param gatewayEnvironment string

@description('Gateway URL overrides: NAME=URL pairs separated by semicolons, each set as the app setting NAME.')
param gatewayUrlOverrides string

@description('Table used as the idempotency store.')
param idempotencyTableName string

@description('Maximum number of instances the Flex plan may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Instance memory size in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Concurrent HTTP requests per instance. The Python worker runs the (sync) functions on a thread pool of the same size.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

// Each gateway declares the app setting that overrides its URL; the template names none of them.
var gatewayUrlEntries = empty(gatewayUrlOverrides) ? [] : split(gatewayUrlOverrides, ';')
var gatewayUrlSettings = [for entry in gatewayUrlEntries: {
  name: trim(substring(entry, 0, indexOf(entry, '=')))
  value: trim(substring(entry, indexOf(entry, '=') + 1))
}]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy for Flex Consumption is available only in some regions and requires always-ready instances in every zone (a standing cost); the payment API is stateless and retried by the monolith with the same transactionId. Enable it per region when required.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_78: Flex Consumption does not support FTP/FTPS and rejects properties.ftpsState ("FTPS not supported"); there is no FTP endpoint to disable.
  // checkov:skip=CKV_AZURE_17: Callers (the LMS monolith) authenticate with function keys (authLevel function) over TLS; requiring client certificates would break the V1 contract. Revisit with mTLS at an API gateway.
  // checkov:skip=CKV_AZURE_222: This is a public HTTPS API called by the LMS monolith; access is controlled by function keys. Restrict with access restrictions or a private endpoint when the monolith moves into a VNet.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero per request; a minimum instance count (always-ready instances) is a cost choice, not a security control. Set functionAppConfig.scaleAndConcurrency.alwaysReady if cold starts matter.
  // checkov:skip=CKV_AZURE_213: App Service's instance health check (siteConfig.healthCheckPath) is not set: Flex Consumption manages and replaces its instances itself, and the platform reference does not list the setting for Flex. The anonymous GET /health exists for AKS probes and external monitors (README, Operating).
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: concat([
        // Host storage through the user-assigned identity (no keys, platform.md 8).
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: storageBlobEndpoint
        }
        {
          name: 'AzureWebJobsStorage__queueServiceUri'
          value: storageQueueEndpoint
        }
        {
          // Also the idempotency store's endpoint (shared/settings.py reads this setting).
          name: 'AzureWebJobsStorage__tableServiceUri'
          value: storageTableEndpoint
        }
        // Application Insights with Entra ID auth (local auth is disabled on the component).
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: applicationInsightsConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        // DefaultAzureCredential picks the user-assigned identity from AZURE_CLIENT_ID.
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        // Application settings (shared/settings.py and the V1 contract's settings table).
        {
          name: 'CREDENTIAL_SOURCE'
          value: 'keyvault'
        }
        {
          name: 'KEY_VAULT_URL'
          value: keyVaultUri
        }
        {
          name: 'GATEWAY_ENVIRONMENT'
          value: gatewayEnvironment
        }
        {
          name: 'ENABLE_SIMULATOR'
          value: 'false'
        }
        {
          name: 'ALLOW_REQUEST_CREDENTIALS'
          value: 'false'
        }
        {
          name: 'GATEWAY_TIMEOUT_SECONDS'
          value: '40'
        }
        {
          name: 'GATEWAY_CONNECT_TIMEOUT_SECONDS'
          value: '5'
        }
        {
          name: 'CREDENTIAL_CACHE_TTL_SECONDS'
          value: '300'
        }
        {
          name: 'IDEMPOTENCY_STORE'
          value: 'table'
        }
        {
          name: 'IDEMPOTENCY_TABLE_NAME'
          value: idempotencyTableName
        }
        {
          name: 'IDEMPOTENCY_HMAC_SECRET_NAME'
          value: 'idempotency-hmac-key'
        }
        {
          name: 'RECONCILE_AFTER_SECONDS'
          value: '600'
        }
        // Sync functions run on the worker's thread pool; size it to the HTTP concurrency above.
        {
          name: 'PYTHON_THREADPOOL_THREAD_COUNT'
          value: string(httpPerInstanceConcurrency)
        }
      ], gatewayUrlSettings)
    }
  }
}

output id string = functionApp.id
output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
