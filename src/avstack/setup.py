from glob import glob

from setuptools import find_packages, setup

package_name = 'avstack'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        # The repository's top-level launch/ and config/ (one source of truth for both launchers).
        ('share/' + package_name + '/launch', glob('../../launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('../../config/*.yaml')),
        ('share/' + package_name + '/config/remaps', glob('../../config/remaps/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='avstack maintainers',
    maintainer_email='maintainers@avstack.dev',
    description='The command line and launch files of the autonomy stack.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'avstack = avstack.cli:main',
        ],
    },
)
