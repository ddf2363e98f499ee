from setuptools import find_packages, setup

package_name = 'stack_common'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['default_checkpoint/*', 'fastdds_profile.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='avstack maintainers',
    maintainer_email='maintainers@avstack.dev',
    description='Wire contracts of the autonomy stack.',
    license='Apache-2.0',
)
