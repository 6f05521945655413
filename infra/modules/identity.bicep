// User-assigned managed identity for the function app. Its clientId feeds AZURE_CLIENT_ID
// (DefaultAzureCredential) and AzureWebJobsStorage__clientId; its principalId gets the role assignments.

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
